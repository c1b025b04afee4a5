"""Who sees what of a case's report: the lead department everything, a cooperating
department names without numbers, a key limited to places or channels no photos."""

from __future__ import annotations

from typing import Any

from contracts.enums import Department
from kit.auth import Principal, Scope
from kit.erasure import erase_json
from services.mediation.domain.case_report import Audience, audience, case_report, revealable

LEAD = Department.VILLAGE_MEDIATION.value
REPORT: dict[str, Any] = {
    "case_id": "FQ1", "channel": "grid", "address": "枫源村3组",
    "location": {"lat": 29.71, "lon": 120.23}, "photos": ["https://grid.example.cn/a.jpg"],
    "channel_fields": {"report_id": "G1", "event_type": "邻里纠纷"},
    "reporter": {"name": "网格员陈明", "role": "reporter"},
    "parties": [{"name": "张三", "role": "other", "phone_masked": "139****5678",
                 "phone_hash": "h", "address": "枫源村3组12号"}]}


def key(*scopes: str, **limits: frozenset[str]) -> Principal:
    return Principal("k", "test", frozenset(scopes), **limits)


def test_each_kind_of_key_is_its_audience() -> None:
    assert audience(key(), LEAD) is Audience.FULL
    assert audience(key(departments=frozenset({LEAD})), LEAD) is Audience.LEAD
    assert audience(key(departments=frozenset({"police_station"})), LEAD) is Audience.COOPERATING
    assert audience(key(jurisdictions=frozenset({"330681"})), LEAD) is Audience.OVERVIEW
    assert audience(key(channels=frozenset({"grid"})), LEAD) is Audience.OVERVIEW


def test_the_lead_department_sees_the_parties_masked_the_photos_and_the_fields() -> None:
    shown = case_report(REPORT, Audience.LEAD)
    assert shown.photos == REPORT["photos"]
    assert shown.channel_fields == REPORT["channel_fields"]
    assert shown.parties[0].phone_masked == "139****5678"
    assert shown.parties[0].person == "parties.0"
    assert shown.reporter is not None and shown.reporter.person == "reporter"
    assert shown.withheld == []
    assert "phone_hash" not in shown.parties[0].model_dump()


def test_a_cooperating_department_sees_names_and_photos_but_no_numbers_or_addresses() -> None:
    shown = case_report(REPORT, Audience.COOPERATING)
    party = shown.parties[0]
    assert (party.name, party.phone_masked, party.address) == ("张三", None, None)
    assert shown.photos == REPORT["photos"]
    assert shown.address == "枫源村3组"
    assert set(shown.withheld) == {"parties.phone_masked", "parties.id_number_masked",
                                   "parties.address"}


def test_a_key_limited_to_places_sees_everything_but_the_photos() -> None:
    shown = case_report(REPORT, Audience.OVERVIEW)
    assert shown.photos == []
    assert shown.withheld == ["photos"]
    assert shown.parties[0].phone_masked == "139****5678"


def test_old_missing_and_erased_reports_show_what_there_is() -> None:
    old = {k: v for k, v in REPORT.items() if k not in ("photos", "channel_fields")}
    assert case_report(old, Audience.FULL).photos == []
    assert case_report(old, Audience.FULL).channel_fields == {}
    assert case_report(None, Audience.FULL).parties == []
    erased = case_report(erase_json(REPORT), Audience.FULL)
    assert erased.photos == [] and erased.location is None
    assert erased.parties[0].name is None and erased.parties[0].phone_masked is None


def test_only_keys_with_the_scope_and_not_cooperating_may_reveal_numbers_there_are() -> None:
    scope = Scope.PERSONAL_DATA_REVEAL.value
    assert revealable(key(scope), Audience.FULL, REPORT, erased=False)
    assert revealable(key(Scope.ADMIN.value), Audience.LEAD, REPORT, erased=False)
    assert not revealable(key(Scope.CASES_READ.value), Audience.FULL, REPORT, erased=False)
    assert not revealable(key(scope), Audience.COOPERATING, REPORT, erased=False)
    assert not revealable(key(scope), Audience.FULL, REPORT, erased=True)
    nobody_numbered = {**REPORT, "parties": [{"name": "张三"}]}
    assert not revealable(key(scope), Audience.FULL, nobody_numbered, erased=False)
