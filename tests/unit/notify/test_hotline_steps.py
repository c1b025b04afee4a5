"""Each step of a 12345 work order the hotline tracks becomes one callback in its terms; a
note or an extension changes none of the facts the result is built from; a receiver's 4xx
answer is kept short and clean for the delivery log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.api_notify import HotlineFeedback, HotlineStep
from contracts.enums import CaseActivity, Channel, Department, ExtensionDecision, Status
from contracts.events import CaseLifecycle, TransitionData
from services.notify.domain import (
    CaseFacts,
    disclosed,
    hotline_feedback,
    hotline_step,
    lifecycle_facts,
    wants_sms_on_closure,
)
from services.notify.posting import response_excerpt

AT = datetime(2026, 11, 30, 9, tzinfo=UTC)
LATER = datetime(2026, 12, 9, 9, tzinfo=UTC)
CASE = CaseFacts(case_id="FQ1", channel="hotline_12345", external_id="GD-1",
                 callback_url="https://hotline.example/cb", lead_department="judicial_office",
                 reporter_phone_masked="139****5678")


def step(to: Status, activity: CaseActivity | None = None, version: int = 4,
         reason: str | None = None, **data: Any) -> CaseLifecycle:
    return CaseLifecycle(case_id="FQ1", version=version, from_status=to if activity else None,
                         to_status=to, actor="m", reason=reason, at=AT,
                         channel=Channel.HOTLINE_12345, external_id="GD-1",
                         lead_department=Department.JUDICIAL_OFFICE, activity=activity,
                         data=TransitionData(**data))


@pytest.mark.parametrize(("lifecycle", "expected"), [
    (step(Status.ACCEPTED), HotlineStep.SIGNED_FOR),
    (step(Status.ACCEPTED, CaseActivity.PROGRESS_NOTE, notes="x"), HotlineStep.PROGRESS),
    (step(Status.IN_MEDIATION, CaseActivity.EXTENSION_REQUESTED), HotlineStep.EXTENSION_REQUESTED),
    (step(Status.IN_MEDIATION, CaseActivity.EXTENSION_APPROVED), HotlineStep.EXTENSION_APPROVED),
    (step(Status.IN_MEDIATION, CaseActivity.EXTENSION_DENIED), HotlineStep.EXTENSION_DENIED),
    (step(Status.CLOSED), HotlineStep.CLOSED),
    (step(Status.RATED, satisfaction=5), HotlineStep.RATED),
    (step(Status.IN_MEDIATION), None),
    (step(Status.RESOLVED, agreement="a", agreement_amount=0), None),
])
def test_the_steps_a_hotline_tracks(lifecycle: CaseLifecycle,
                                    expected: HotlineStep | None) -> None:
    assert hotline_step(lifecycle) == expected


def test_signed_for_names_the_department_and_carries_the_sequence() -> None:
    feedback = hotline_feedback(CASE, step(Status.ACCEPTED, version=3))
    assert feedback is not None
    assert (feedback.step, feedback.status, feedback.sequence) == (
        HotlineStep.SIGNED_FOR, Status.ACCEPTED, 3)
    assert feedback.handling_department is Department.JUDICIAL_OFFICE
    assert feedback.result == "已签收，承办单位：司法所"


def test_a_progress_note_is_masked() -> None:
    feedback = hotline_feedback(CASE, step(Status.ACCEPTED, CaseActivity.PROGRESS_NOTE,
                                           notes="已电话联系13912345678"))
    assert feedback is not None and feedback.note == "已电话联系139****5678"
    assert "13912345678" not in feedback.model_dump_json()


def test_an_extension_request_and_its_approval() -> None:
    asked = hotline_feedback(CASE, step(
        Status.IN_MEDIATION, CaseActivity.EXTENSION_REQUESTED, reason="等待鉴定",
        extension_id="ext_1", requested_resolve_by=LATER))
    assert asked is not None and asked.extension is not None
    assert (asked.extension.extension_id, asked.extension.requested_resolve_by,
            asked.extension.reason, asked.extension.decision) == (
        "ext_1", LATER, "等待鉴定", None)
    approved = hotline_feedback(CASE, step(
        Status.IN_MEDIATION, CaseActivity.EXTENSION_APPROVED, extension_id="ext_1",
        extension_decision=ExtensionDecision.APPROVED, resolve_by=LATER))
    assert approved is not None and approved.extension is not None
    assert approved.extension.decision is ExtensionDecision.APPROVED
    assert approved.resolve_by == LATER
    # What an operator reads to the caller: the date in Beijing time, not an ISO instant.
    assert asked.result == "申请延期至2026年12月09日17:00：等待鉴定"
    assert approved.result == "延期申请已同意，办理期限至2026年12月09日17:00"


def test_no_callback_without_a_callback_url_or_for_another_channel() -> None:
    note = step(Status.ACCEPTED, CaseActivity.PROGRESS_NOTE, notes="x")
    assert hotline_feedback(CaseFacts(case_id="FQ1", channel="hotline_12345"), note) is None
    assert hotline_feedback(CaseFacts(case_id="FQ1", channel="grid",
                                      callback_url="https://x.example"), note) is None


def test_an_activity_keeps_the_outcome_and_sends_no_closing_sms() -> None:
    note_on_a_closed_case = step(Status.CLOSED, CaseActivity.PROGRESS_NOTE, notes="x")
    assert set(lifecycle_facts(note_on_a_closed_case)) == {
        "status", "channel", "lead_department"}
    texted = ["hotline_12345"]  # a centre that texts 12345 callers too
    assert not wants_sms_on_closure(CASE, note_on_a_closed_case, texted)
    assert wants_sms_on_closure(CASE, step(Status.CLOSED), texted)


def test_a_4xx_answer_is_cut_cleaned_and_masked() -> None:
    body = b'{"msg":\n\t"\xe5\xb7\xa5\xe5\x8d\x95\xe4\xb8\x8d\xe5\xad\x98\xe5\x9c\xa8",' \
           b' "tel": "13912345678"}\x00\x1b[31m' + b"x" * 5000
    excerpt = response_excerpt(body, max_chars=80)
    assert excerpt.startswith('{"msg": "工单不存在", "tel": "139****5678"}')
    assert len(excerpt) == 80 and excerpt.endswith("…")
    assert not any(c in excerpt for c in "\n\t\x00\x1b")
    assert response_excerpt(b"\xff\xfe bad bytes") == "�� bad bytes"
    assert response_excerpt(b"") == ""


def test_a_callback_names_the_handler_and_the_departments_public_contact_as_disclosed() -> None:
    """Issue 23: what a hotline shows the caller: who handles it (承办人) and how to reach
    the department (联系电话), as far as the centre chose to disclose them."""
    base = HotlineFeedback(order_no="GD-1", case_id="FQ1", status=Status.ACCEPTED,
                           result="已签收", handling_department=Department.JUDICIAL_OFFICE,
                           closed_at=None)
    contacts = {"judicial_office": "0575-87001234"}
    shown = disclosed(base, "司法所 王强", name_handler=True, contacts=contacts)
    assert (shown.handler, shown.handler_contact) == ("司法所 王强", "0575-87001234")
    hidden = disclosed(base, "司法所 王强", name_handler=False, contacts={})
    assert (hidden.handler, hidden.handler_contact) == (None, None)
    system = disclosed(base, "urn:fengqiao:mediation", name_handler=True, contacts=contacts)
    assert system.handler is None
    typed = disclosed(base, "王强13812345678", name_handler=True, contacts=contacts)
    assert typed.handler is not None and "13812345678" not in typed.handler
