"""The native payload models: each channel's required fields and natural limits."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from contracts.channels import (
    CourtReferral,
    GridReport,
    HotlineWorkOrder,
    Open311Request,
    Party,
    PetitionReferral,
    PoliceReferral,
    WalkInVisit,
    id_number_check_character,
    normalise_id_number,
)
from contracts.enums import PartyRole
from services.intake.domain import differing_fields

AT = "2026-11-20T08:00:00+08:00"


def invalid_fields(model: type[BaseModel], payload: Any) -> set[str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(payload)
    return {".".join(map(str, e["loc"])) for e in info.value.errors()}


@pytest.mark.parametrize("number", ["11010519491231002X", "11010519491231002x",
                                    "440524188001010014", " 330699198503120037 "])
def test_well_formed_resident_id_numbers_pass_with_an_upper_case_x(number: str) -> None:
    assert normalise_id_number(number) == number.strip().upper()


@pytest.mark.parametrize("number,reason", [
    ("110105194912310021", "check character"),  # last character should be X
    ("440524188001010015", "check character"),
    ("110105194913310029", "birth date"),  # month 13
    ("110105187001010013", "out of range"),  # born before 1880
    ("110105299001010012", "out of range"),  # born in the future
    ("110105491231002", "18-character"),  # first-generation 15-digit numbers have expired
    ("11010519491231002Y", "18-character"),
    ("1101051949123100", "18-character"),
])
def test_malformed_id_numbers_are_refused_without_repeating_them(number: str,
                                                                 reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as info:
        normalise_id_number(number)
    assert number not in str(info.value)


def test_the_check_character_follows_gb_11643() -> None:
    # Sum of digit × 2^(17-i) mod 11, mapped through 1 0 X 9 8 7 6 5 4 3 2.
    assert id_number_check_character("11010519491231002") == "X"
    assert id_number_check_character("44052418800101001") == "4"


@pytest.mark.parametrize("role,code", [("原告", PartyRole.PLAINTIFF), ("被告", PartyRole.DEFENDANT),
                                       ("申请人", PartyRole.APPLICANT),
                                       ("信访人", PartyRole.PETITIONER),
                                       ("Respondent", PartyRole.RESPONDENT),
                                       ("other", PartyRole.OTHER)])
def test_a_party_role_may_be_a_code_or_its_chinese_name(role: str, code: PartyRole) -> None:
    assert Party.model_validate({"name": "甲", "role": role}).role is code


def test_empty_optional_strings_are_absent_but_required_ones_are_not() -> None:
    order = HotlineWorkOrder.model_validate({"order_no": "A1", "content": "x", "received_at": AT,
                                             "caller_phone": "", "region_code": " "})
    assert order.caller_phone is None and order.region_code is None
    assert invalid_fields(HotlineWorkOrder, {"order_no": "", "content": " ",
                                             "received_at": AT}) == {"order_no", "content"}


GRID = {"report_id": "G1", "grid_code": "330699001001001", "description": "噪音扰民"}


@pytest.mark.parametrize("changes,fields", [
    ({"grid_code": "33069900100100"}, {"grid_code"}),
    ({"grid_code": "3306990010010011"}, {"grid_code"}),
    ({"grid_code": None, "description": None}, {"grid_code", "description"}),
    ({"grid_code": ""}, {"grid_code"}),  # "" is absent: without a location, still required
    ({"grid_code": None, "location": {"lat": 91, "lon": 120}}, {"location.lat"}),
    ({"description": "字" * 5001}, {"description"}),
    ({"people_involved": -1}, {"people_involved"}),
    ({"occurred_at": "2026-11-20 08:00"}, {"occurred_at"}),
    ({"location": {"lat": 10, "lon": 181}}, {"location.lon"}),
    ({"photos": ["https://a.cn/1.jpg"] * 21}, {"photos"}),
    ({"parties": [{"phone": "1381234567"}]}, {"parties.0.phone"}),
    ({"report_id": "has space"}, {"report_id"}),
])
def test_grid_report_limits(changes: dict[str, Any], fields: set[str]) -> None:
    payload = {k: v for k, v in {**GRID, **changes}.items() if v is not None}
    assert invalid_fields(GridReport, payload) == fields


def test_a_grid_report_may_come_with_only_coordinates() -> None:
    report = GridReport.model_validate({"report_id": "G1", "description": "噪音扰民",
                                        "location": {"lat": 29.765, "lon": 120.295}})
    assert report.grid_code is None and report.location is not None
    assert report.location.lon == 120.295


@pytest.mark.parametrize("code,valid", [("330699", True), ("330699001", True),
                                        ("330699001001", True), ("3306990", False),
                                        ("33069900100", False), ("330699001001001", False),
                                        ("33069A", False)])
def test_region_codes_are_6_9_or_12_digits(code: str, valid: bool) -> None:
    payload = {"incident_no": "P1", "summary": "争执", "region_code": code}
    if valid:
        assert PoliceReferral.model_validate(payload).region_code == code
    else:
        assert invalid_fields(PoliceReferral, payload) == {"region_code"}


def test_police_station_codes_are_short_alphanumerics() -> None:
    ok = PoliceReferral.model_validate({"incident_no": "P1", "summary": "x",
                                        "station_code": "330699510100", "injuries": "true"})
    assert ok.injuries is True
    assert invalid_fields(PoliceReferral, {"incident_no": "P1", "summary": "x",
                                           "station_code": "城关所"}) == {"station_code"}


COURT = {"case_no": "（2026）浙0699民诉前调88号", "summary": "借款未还"}


@pytest.mark.parametrize("changes,fields", [
    ({"claim_amount": -0.01}, {"claim_amount"}),
    ({"claim_amount": "lots"}, {"claim_amount"}),
    ({"claim_amount": 1e13}, {"claim_amount"}),
    ({"referred_at": "2026-11-20"}, {"referred_at"}),
    ({"referred_at": AT, "mediation_deadline": "2026-11-19T00:00:00+08:00"},
     {"mediation_deadline"}),
    ({"plaintiffs": [{"id_number": "110105194912310021"}]}, {"plaintiffs.0.id_number"}),
    ({"defendants": [{"role": "witness"}]}, {"defendants.0.role"}),
    ({"court_code": "x"}, {"court_code"}),
])
def test_court_referral_limits(changes: dict[str, Any], fields: set[str]) -> None:
    assert invalid_fields(CourtReferral, {**COURT, **changes}) == fields


def test_court_case_numbers_keep_their_brackets_and_zero_amounts_are_allowed() -> None:
    referral = CourtReferral.model_validate({**COURT, "claim_amount": 0})
    assert referral.case_no == "（2026）浙0699民诉前调88号"
    assert referral.claim_amount == 0


def test_petition_and_walk_in_required_fields() -> None:
    assert invalid_fields(PetitionReferral, {"content": "x", "people_count": -3}) == {
        "petition_no", "people_count"}
    assert invalid_fields(WalkInVisit, {"visit_id": "V 1"}) == {"visit_id", "content"}
    assert WalkInVisit.model_validate({"content": "欠薪"}).visit_id is None


@pytest.mark.parametrize("form,problem", [
    ({"service_code": "neighbor", "description": "噪音", "lat": "30.1"}, "lat and long"),
    ({"service_code": "neighbor", "description": "噪音"}, "a location is required"),
    ({"service_code": "neighbor", "description": "噪音", "address_id": "A1",
      "email": "not-an-email"}, "email"),
    ({"service_code": "neighbor", "description": "", "address_string": "x"}, "description"),
    ({"service_code": "neighbor", "description": "x", "lat": "91", "long": "0"}, "lat"),
])
def test_open311_requests_need_a_location_and_well_formed_fields(
        form: dict[str, str], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Open311Request.model_validate(form)


def test_open311_form_values_are_parsed_from_strings() -> None:
    filed = Open311Request.model_validate({"service_code": "neighbor", "description": "噪音",
                                           "lat": "30.25", "long": "120.16",
                                           "phone": "138 0013 8000", "email": ""})
    assert (filed.lat, filed.long, filed.phone, filed.email) == (30.25, 120.16,
                                                                 "13800138000", None)


@pytest.mark.parametrize("changes,fields", [
    ({"content": "漏水\x00"}, {"content"}),
    ({"caller_name": "张\x07三"}, {"caller_name"}),
    ({"received_at": "9999-12-31T23:59:59+08:00"}, {"received_at"}),
    ({"deadline": "1899-12-31T00:00:00+08:00"}, {"deadline"}),
])
def test_control_characters_and_implausible_years_are_refused(changes: dict[str, Any],
                                                              fields: set[str]) -> None:
    payload = {"order_no": "A1", "content": "x", "received_at": AT, **changes}
    assert invalid_fields(HotlineWorkOrder, payload) == fields


def test_tabs_and_line_breaks_are_text() -> None:
    order = HotlineWorkOrder.model_validate({"order_no": "A1", "content": "一\n二\t三\r\n四",
                                             "received_at": AT})
    assert order.content == "一\n二\t三\r\n四"


def test_a_conflict_names_the_fields_that_changed_and_never_their_values() -> None:
    first = {"order_no": "A1", "content": "噪音", "caller": {"phone": "138", "name": "张"},
             "tags": ["a", "b"], "amount": None}
    again = {"order_no": "A1", "content": "噪音扰民", "caller": {"phone": "139", "name": "张"},
             "tags": ["a", "c"], "amount": 5}
    assert differing_fields(first, again) == ["amount", "caller.phone", "content", "tags.1"]
    assert differing_fields(first, first) == []
    assert differing_fields({"tags": ["a"]}, {"tags": ["a", "b"]}) == ["tags"]
