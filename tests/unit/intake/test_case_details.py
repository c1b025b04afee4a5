"""What intake adds to a case for the people who work it: the channel's own fields and the
grid's photos in the event (numbers masked), and the people of a stored report in the order
the event lists them, for the reveal route."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.channels import CourtReferral, GridReport, HotlineWorkOrder, WalkInVisit
from contracts.enums import Channel, PartyRole
from services.intake.domain import ADAPTERS, people_in, prepare

SECRET = "test-secret"
NOW = datetime(2026, 11, 20, 1, tzinfo=UTC)


def test_a_court_referral_carries_its_cause_court_and_deadline_as_channel_fields() -> None:
    referral = CourtReferral(case_no="(2026)浙0681民诉前调7号", summary="借款未还",
                             court_code="ZJ0681", court_name="诸暨市人民法院",
                             cause="民间借贷纠纷", claim_amount=50000,
                             referred_at="2026-11-20T09:00:00+08:00")  # type: ignore[arg-type]
    case = prepare(ADAPTERS[Channel.COURT], referral, NOW, SECRET).case
    assert case.channel_fields == {
        "case_no": "(2026)浙0681民诉前调7号", "court_code": "ZJ0681",
        "court_name": "诸暨市人民法院", "cause": "民间借贷纠纷", "claim_amount": 50000,
        "referred_at": "2026-11-20T09:00:00+08:00",
        # none sent: the 30 days' default, the one the case runs on
        "mediation_deadline": "2026-12-20T09:00:00+08:00"}
    assert case.photos == []


def test_a_grid_report_carries_its_photos_and_fields_and_text_fields_are_masked() -> None:
    report = GridReport(report_id="G1", grid_code="330699101201001", description="占道",
                        event_type="联系13912345678处理", reporter_id="WG0042",
                        photos=["https://grid.example.cn/a.jpg"])  # type: ignore[list-item]
    case = prepare(ADAPTERS[Channel.GRID], report, NOW, SECRET).case
    assert case.photos == ["https://grid.example.cn/a.jpg"]
    assert case.channel_fields == {"report_id": "G1", "grid_code": "330699101201001",
                                   "event_type": "联系139****5678处理", "reporter_id": "WG0042"}


def test_a_hotline_order_carries_its_number_category_and_urgency() -> None:
    order = HotlineWorkOrder(order_no="GD1", content="噪音", received_at=NOW, category="噪音扰民",
                             urgency="urgent")  # type: ignore[arg-type]
    case = prepare(ADAPTERS[Channel.HOTLINE_12345], order, NOW, SECRET).case
    assert case.channel_fields == {"order_no": "GD1", "category": "噪音扰民",
                                   "urgency": "urgent"}


def test_the_people_of_a_stored_report_come_in_the_events_order_with_numbers_in_clear() -> None:
    referral = CourtReferral(case_no="C1", summary="借款", plaintiffs=[
        {"name": "李四", "phone": "138 0013 8000"}], defendants=[  # type: ignore[list-item]
        {"name": "王五", "id_number": "330681199003071233"}])
    prepared = prepare(ADAPTERS[Channel.COURT], referral, NOW, SECRET)
    people = people_in("court", prepared.native)
    assert [(p.ref, p.name, p.role, p.phone, p.id_number) for p in people] == [
        ("parties.0", "李四", PartyRole.PLAINTIFF, "13800138000", None),
        ("parties.1", "王五", PartyRole.DEFENDANT, None, "330681199003071233")]
    assert [p.name for p in prepared.case.parties] == ["李四", "王五"]


def test_a_walk_in_visitor_is_the_reporter_before_the_parties() -> None:
    visit = WalkInVisit(content="欠薪", visitor={"name": "赵六", "phone": "13700137000"},
                        parties=[{"name": "老板"}])  # type: ignore[arg-type, list-item]
    prepared = prepare(ADAPTERS[Channel.WALK_IN], visit, NOW, SECRET)
    assert [(p.ref, p.phone) for p in people_in("walk_in", prepared.native)] == [
        ("reporter", "13700137000"), ("parties.0", None)]


def test_an_erased_report_has_people_without_numbers() -> None:
    erased = {"order_no": "GD1", "caller_name": None, "caller_phone": None}
    assert people_in("hotline_12345", erased) == []
