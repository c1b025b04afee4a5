"""The workbench's pure parts: step forms, derived keys, sign-in throttling, time left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.api_mediation import TransitionRequest
from contracts.enums import Status
from services.workbench import accounts
from services.workbench.accounts import Role, SignInThrottle, derive_token
from services.workbench.forms import STEP_FIELDS, field_of, missing, transition_body
from services.workbench.pages import _todo_order, _with_time_left
from services.workbench.web import time_left


def test_each_step_form_builds_a_request_mediation_accepts() -> None:
    samples = {"agreement": "协议", "agreement_amount": "0", "failure_reason": "不同意",
               "referral": "litigation", "visit_notes": "已回访", "satisfaction": "5",
               "reason": "不属本部门", "suggested_department": "court", "mediator": "王",
               "notes": "备注"}
    for status, fields in STEP_FIELDS.items():
        form = {f.name: samples[f.name] for f in fields}
        body = transition_body(status.value, form, "张三", 3)
        TransitionRequest.model_validate(body)  # extra fields would be refused
        assert set(body["data"]) == {f.name for f in fields if f.name != "reason"}


def test_empty_fields_are_left_out_and_required_ones_reported() -> None:
    fields = STEP_FIELDS[Status.RESOLVED]
    assert missing(fields, {"agreement": " ", "notes": ""}) == {
        "agreement": "必填", "agreement_amount": "必填"}
    body = transition_body("resolved", {"agreement": "x", "agreement_amount": "12.5",
                                        "notes": ""}, "a", 1)
    assert body["data"] == {"agreement": "x", "agreement_amount": 12.5}
    assert field_of("data.agreement") == "agreement" and field_of("reason") == "reason"


def test_derived_tokens_depend_on_secret_user_and_nonce() -> None:
    token = derive_token("s", "zhang", "n1")
    assert token.startswith("fq_wb_") and token == derive_token("s", "zhang", "n1")
    assert len({token, derive_token("t", "zhang", "n1"), derive_token("s", "li", "n1"),
                derive_token("s", "zhang", "n2")}) == 4


def test_role_rules() -> None:
    with pytest.raises(accounts.AccountError, match="department"):
        accounts._check_limits(Role.HANDLER, [], [])
    with pytest.raises(accounts.AccountError, match="not limited"):
        accounts._check_limits(Role.DISPATCHER, ["court"], [])
    with pytest.raises(accounts.AccountError, match="unknown"):
        accounts._check_limits(Role.HANDLER, ["nowhere"], [])
    accounts._check_limits(Role.HANDLER, ["court"], ["330681"])
    with pytest.raises(accounts.AccountError, match="at least"):
        accounts.hash_password("short")


def test_passwords_verify_only_themselves() -> None:
    hashed = accounts.hash_password("correct horse")
    assert accounts.check_password("correct horse", hashed)
    assert not accounts.check_password("wrong horse", hashed)
    assert not accounts.check_password("correct horse", None)


def test_sign_in_throttle_per_user_and_address() -> None:
    throttle = SignInThrottle(per_user=2, per_address=3)
    throttle.failed("Zhang", "10.0.0.1")
    assert throttle.retry_after("zhang", "10.0.0.1") == 0
    throttle.failed("zhang", "10.0.0.2")
    assert throttle.retry_after("zhang", "10.0.0.9") > 0  # the user, from anywhere
    throttle.succeeded("zhang")
    assert throttle.retry_after("zhang", "10.0.0.9") == 0
    for user in ("a", "b", "c"):
        throttle.failed(user, "10.0.0.5")
    assert throttle.retry_after("d", "10.0.0.5") > 0  # the address, for anyone


def test_time_left_and_todo_order() -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    assert time_left((now + timedelta(hours=3, minutes=20)).isoformat(), now)[0] == \
        "剩余 3小时20分"
    assert time_left((now - timedelta(days=1, hours=2)).isoformat(), now)[0] == "超期 1天2小时"
    later = (datetime.now(UTC) + timedelta(hours=5)).isoformat()
    sooner = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    cases = [_with_time_left({"status": "routed", "risk": r, "accept_by": by,
                              "received_at": "x", "case_id": n})
             for n, r, by in (("a", "blue", sooner), ("b", "red", later),
                              ("c", "yellow", later), ("d", "blue", None))]
    assert [c["case_id"] for c in sorted(cases, key=_todo_order)] == ["b", "a", "c", "d"]


def test_the_case_screen_lists_the_reporter_before_the_parties() -> None:
    from services.workbench.pages import _people

    case = {"report": {"reporter": {"person": "reporter", "name": "王"},
                       "parties": [{"person": "parties.0", "name": "李"}]}}
    assert [p["person"] for p in _people(case)] == ["reporter", "parties.0"]
    assert _people({"report": {"reporter": None, "parties": []}}) == []


def test_supervised_cases_group_by_lead_department_the_most_first() -> None:
    from services.workbench.pages import _by_department

    now = datetime.now(UTC).isoformat()
    cases = [{"case_id": c, "lead_department": d, "status": "routed", "accept_by": now,
              "received_at": now} for c, d in (("A", "court"), ("B", "judicial_office"),
                                               ("C", "judicial_office"), ("D", None))]
    grouped = _by_department(cases)
    assert [(d, [c["case_id"] for c in cs]) for d, cs in grouped] == [
        ("judicial_office", ["B", "C"]), ("court", ["A"]), ("", ["D"])]
    assert all("time_left" in c for _, cs in grouped for c in cs)


def test_handlers_may_reveal_numbers_and_clerks_and_leaders_may_not() -> None:
    from kit.auth import Scope

    assert Scope.PERSONAL_DATA_REVEAL in accounts.ROLE_SCOPES[Role.HANDLER]
    for role in (Role.CLERK, Role.LEADER, Role.DISPATCHER):
        assert Scope.PERSONAL_DATA_REVEAL not in accounts.ROLE_SCOPES[role]
