"""The contracts: codes exactly as DOMAIN.md, generated files in step with the models."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from contracts import generate
from contracts.channels import HotlineWorkOrder
from contracts.enums import Category, Channel, Department, Risk, Status, Tier
from contracts.events import CaseReported, CaseReportedEvent


def test_generated_schemas_and_asyncapi_match_the_models() -> None:
    stale = [str(path.name) for path, text in generate.rendered().items()
             if not path.exists() or path.read_text(encoding="utf-8") != text]
    assert not stale, f"run `uv run python -m contracts.generate`; stale: {stale}"


def test_enum_codes_are_exactly_the_domain_codes() -> None:
    assert {c.value for c in Channel} == {"hotline_12345", "grid", "police", "court",
                                          "petition", "walk_in", "open311"}
    assert {c.value for c in Category} == {
        "marriage_family", "neighbor", "land_resource", "land_acquisition", "labor",
        "construction", "debt_finance", "consumer_commercial", "traffic_accident", "medical",
        "property_management", "campus", "tourism", "environment", "other"}
    assert {d.value for d in Department} == {
        "village_mediation", "judicial_office", "police_station", "traffic_police", "court",
        "petition_office", "hr_social_security", "womens_federation", "civil_affairs",
        "natural_resources", "agriculture_rural", "housing_construction", "health",
        "market_regulation", "education", "culture_tourism", "ecology_environment"}
    assert [t.value for t in Tier] == ["village", "town", "county"]
    assert {r.value for r in Risk} == {"red", "orange", "yellow", "blue"}
    assert {"reported", "routed", "accepted", "in_mediation", "resolved", "failed", "closed",
            "visited", "rated", "archived", "escalated", "referred", "withdrawn", "returned",
            "awaiting_dispatch", "returned_to_source", "merged"} == {
        s.value for s in Status}


def test_tier_above_stops_at_county() -> None:
    assert Tier.VILLAGE.above() is Tier.TOWN
    assert Tier.TOWN.above() is Tier.COUNTY
    assert Tier.COUNTY.above() is Tier.COUNTY


def test_cloudevent_round_trips_with_type_and_subject() -> None:
    report = CaseReported(case_id="FQ1", channel=Channel.GRID, external_id="G1",
                          received_at=datetime(2026, 11, 1, tzinfo=UTC), text="邻居漏水")
    event = CaseReportedEvent.wrap(report, source="intake", subject="FQ1")
    again = CaseReportedEvent.model_validate_json(event.model_dump_json())
    assert again == event
    assert again.type == "cn.fengqiao.case.reported.v1"
    assert again.source == "urn:fengqiao:intake"
    assert again.specversion == "1.0"


@pytest.mark.parametrize("phone,normalised", [
    ("13800138000", "13800138000"), ("+86 138 0013 8000", "13800138000"),
    ("010-12345678", "010-12345678"), ("0755-1234567", "0755-1234567")])
def test_hotline_accepts_well_formed_phones(phone: str, normalised: str) -> None:
    order = HotlineWorkOrder(order_no="A1", content="x", caller_phone=phone,
                             received_at=datetime(2026, 11, 1, tzinfo=UTC))
    assert order.caller_phone == normalised


@pytest.mark.parametrize("field,value", [
    ("caller_phone", "12345"), ("received_at", "2026-11-01T10:00:00"),
    ("order_no", ""), ("content", ""), ("urgency", "whenever"), ("region_code", "1234"),
    ("callback_url", "not a url")])
def test_hotline_rejects_malformed_fields(field: str, value: str) -> None:
    payload = {"order_no": "A1", "content": "x", "received_at": "2026-11-01T10:00:00+08:00",
               field: value}
    with pytest.raises(ValidationError) as info:
        HotlineWorkOrder.model_validate(payload)
    assert [e["loc"][0] for e in info.value.errors()] == [field]
