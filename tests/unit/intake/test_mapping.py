"""Native payloads become the canonical CaseReported: fields, defaults, masked numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from contracts.channels import (
    CourtReferral,
    GridReport,
    HotlineWorkOrder,
    PetitionReferral,
    PoliceReferral,
    WalkInVisit,
)
from contracts.enums import Channel, PartyRole, Urgency
from kit.privacy import keyed_hash
from services.intake.domain import ADAPTERS, Receipt, content_fingerprint, prepare

SECRET = "test-secret"
NOW = datetime(2026, 11, 20, 1, 2, 3, tzinfo=UTC)
RECEIPT = Receipt(case_id="FQ20261120-0000000000000001", external_id="X1", received_at=NOW,
                  hash_secret=SECRET)


def test_every_channel_but_open311_has_an_adapter_with_its_external_id_field() -> None:
    assert {c.value: a.external_id_field for c, a in ADAPTERS.items()} == {
        "hotline_12345": "order_no", "grid": "report_id", "police": "incident_no",
        "court": "case_no", "petition": "petition_no", "walk_in": "visit_id"}
    assert [c for c, a in ADAPTERS.items() if a.generates_ids] == [Channel.WALK_IN]


def test_a_hotline_order_keeps_its_times_urgency_and_callback() -> None:
    order = HotlineWorkOrder.model_validate({
        "order_no": "GD1", "content": "漏水", "received_at": "2026-11-20T08:00:00+08:00",
        "caller_phone": "13912345678", "urgency": "urgent", "category": "邻里纠纷",
        "deadline": "2026-11-22T08:00:00+08:00", "callback_url": "https://hotline.example/cb"})
    case = ADAPTERS[Channel.HOTLINE_12345].to_case(order, RECEIPT)
    assert case.received_at == order.received_at and case.deadline == order.deadline
    assert (case.urgency, case.channel_category, case.callback_url) == (
        Urgency.URGENT, "邻里纠纷", "https://hotline.example/cb")
    assert case.reporter is not None
    assert case.reporter.phone_hash == keyed_hash(SECRET, "phone", "13912345678")


def test_a_grid_report_is_received_now_and_its_worker_is_the_reporter_without_hashes() -> None:
    report = GridReport.model_validate({
        "report_id": "G1", "grid_code": "330699001001001", "description": "噪音",
        "reporter_id": "WG1", "reporter_name": "李四", "people_involved": 7,
        "occurred_at": "2026-11-19T21:00:00+08:00",
        "parties": [{"name": "王五", "id_number": "11010519491231002X"}]})
    case = ADAPTERS[Channel.GRID].to_case(report, RECEIPT)
    assert case.received_at == NOW and case.occurred_at == report.occurred_at
    assert case.people_count == 7 and case.grid_code == "330699001001001"
    assert case.reporter is not None and case.reporter.phone_hash is None
    assert case.parties[0].id_number_masked == "110105********002X"
    assert case.parties[0].id_number_hash == keyed_hash(SECRET, "id", "11010519491231002X")


def test_a_court_referral_without_a_deadline_gets_thirty_days_from_referral() -> None:
    referred = datetime(2026, 11, 1, 9, tzinfo=UTC)
    referral = CourtReferral.model_validate({
        "case_no": "C1", "summary": "借款", "claim_amount": 60000, "referred_at": referred,
        "plaintiffs": [{"name": "甲"}], "defendants": [{"name": "乙", "role": "other"}]})
    case = ADAPTERS[Channel.COURT].to_case(referral, RECEIPT)
    assert case.deadline == referred + timedelta(days=30)
    assert case.received_at == referred and case.amount == 60000
    assert [p.role for p in case.parties] == [PartyRole.PLAINTIFF, PartyRole.OTHER]


def test_a_court_referral_without_dates_counts_from_receipt_and_keeps_its_own_deadline() -> None:
    bare = CourtReferral(case_no="C2", summary="x")
    assert ADAPTERS[Channel.COURT].to_case(bare, RECEIPT).deadline == NOW + timedelta(days=30)
    own = CourtReferral(case_no="C3", summary="x", mediation_deadline=NOW + timedelta(days=10))
    assert ADAPTERS[Channel.COURT].to_case(own, RECEIPT).deadline == NOW + timedelta(days=10)


def test_police_injuries_and_station_travel_with_the_case() -> None:
    referral = PoliceReferral(incident_no="P1", summary="打架", injuries=True,
                              station_code="330699510100", dispute_type="邻里纠纷")
    case = ADAPTERS[Channel.POLICE].to_case(referral, RECEIPT)
    assert (case.injuries, case.station_code, case.channel_category) == (
        True, "330699510100", "邻里纠纷")


def test_a_petition_counts_its_named_petitioners_when_it_states_no_head_count() -> None:
    named = PetitionReferral.model_validate({
        "petition_no": "F1", "content": "联名",
        "petitioners": [{"name": n} for n in "甲乙丙丁戊己"]})
    case = ADAPTERS[Channel.PETITION].to_case(named, RECEIPT)
    assert case.people_count == 6
    assert {p.role for p in case.parties} == {PartyRole.PETITIONER}
    stated = named.model_copy(update={"people_count": 40})
    assert ADAPTERS[Channel.PETITION].to_case(stated, RECEIPT).people_count == 40


def test_a_walk_in_without_a_visit_id_takes_the_case_id_as_its_external_id() -> None:
    adapter = ADAPTERS[Channel.WALK_IN]
    anonymous = prepare(adapter, WalkInVisit(content="欠薪"), NOW, SECRET)
    assert anonymous.external_id == anonymous.case_id == anonymous.case.external_id
    keyed = prepare(adapter, WalkInVisit(content="欠薪", visit_id="V7"), NOW, SECRET)
    assert keyed.external_id == keyed.case.external_id == "V7"
    assert keyed.case.received_at == NOW


def test_no_clear_number_leaves_the_mapping_even_from_free_text() -> None:
    visit = WalkInVisit.model_validate({
        "content": "联系电话13812345678，身份证440524188001010014",
        "address": "城关街道，电话0571-87654321",
        "visitor": {"name": "冯六", "phone": "13500135000", "id_number": "440524188001010014"},
        "parties": [{"name": "老板", "phone": "0571-87654321"}]})
    case = prepare(ADAPTERS[Channel.WALK_IN], visit, NOW, SECRET).case
    dumped = orjson.dumps(case.model_dump(mode="json"))
    for number in (b"13812345678", b"440524188001010014", b"13500135000", b"87654321"):
        assert number not in dumped
    assert case.text == "联系电话138****5678，身份证440524********0014"


def test_the_fingerprint_ignores_field_order_and_sees_any_change() -> None:
    a = HotlineWorkOrder.model_validate({"order_no": "A", "content": "x",
                                         "received_at": "2026-11-20T08:00:00+08:00"})
    b = HotlineWorkOrder.model_validate({"received_at": "2026-11-20T08:00:00+08:00",
                                         "content": "x", "order_no": "A"})
    assert content_fingerprint(a) == content_fingerprint(b)
    assert content_fingerprint(a) != content_fingerprint(a.model_copy(update={"content": "y"}))


def test_numbers_written_any_way_leave_intake_masked_and_hash_like_the_plain_form() -> None:
    """The probe's finding: 139-1234-5678, +86 and full-width numbers, grouped id numbers
    and bank cards in a hotline order's text, name and category stayed in clear."""
    order = HotlineWorkOrder.model_validate({
        "order_no": "GD20261123-0001", "received_at": "2026-11-20T08:00:00+08:00",
        "content": "来电人139-1234-5678（备用 +86 139 1234 5678，１３９１２３４５６７８），身份证"
                   "110105 19491231 002X，卡号6222 0212 3456 7890 123，2026-11-23欠款12000元",
        "caller_name": "王某 139.1234.5678", "category": "借贷纠纷 0571-88886666",
        "caller_phone": "+86 139-1234-5678"})
    case = ADAPTERS[Channel.HOTLINE_12345].to_case(order, RECEIPT)
    body = case.model_dump_json()
    plain = body.replace(" ", "").replace("-", "").replace(".", "")
    for number in ("13912345678", "11010519491231002X", "62220212345678901", "88886666"):
        assert number not in plain
    assert "１３９１２３４５６７８" not in body
    assert "2026-11-23欠款12000元" in case.text and case.external_id == "GD20261123-0001"
    assert case.reporter is not None and case.reporter.phone_masked == "139****5678"
    assert case.reporter.phone_hash == keyed_hash(SECRET, "phone", "13912345678")


def test_structured_phone_and_id_fields_take_the_usual_forms_and_store_the_normal_one() -> None:
    for written, normal in [("139-1234-5678", "13912345678"), ("(+86)139 1234 5678", "13912345678"),
                            ("００８６ １３９１２３４５６７８", "13912345678"),
                            ("86-139.1234.5678", "13912345678"),
                            ("（0571）8888-6666", "0571-88886666"),
                            ("010-12345678 转 123", "010-12345678-123")]:
        order = HotlineWorkOrder.model_validate({
            "order_no": "GD1", "content": "漏水", "received_at": "2026-11-20T08:00:00+08:00",
            "caller_phone": written})
        assert order.caller_phone == normal, written
    visit = WalkInVisit.model_validate({"content": "宅基地", "visitor": {
        "name": "吴十", "id_number": "110105 19491231 002x"}})
    assert visit.visitor is not None and visit.visitor.id_number == "11010519491231002X"
