"""A case's point on the map (the report's coordinates, else its place's centre), the
bounding box a map asks for, the subtree of a code as a range, and the GeoJSON contract."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.dialects import postgresql

from contracts.api_mediation import CaseFeatureCollection, case_geojson_schema
from contracts.enums import Category, Channel, Department, Risk, Tier
from contracts.events import (
    CaseReported,
    Explanation,
    GeoPoint,
    Place,
    RoutingDecision,
    Sla,
)
from services.mediation import store
from services.mediation.domain.places import (
    PLACE,
    REPORTED,
    erased_position,
    parse_bbox,
    reported_position,
    routed_position,
)

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
VILLAGE = Place(code="330699101201", name="枫源村", level="village", source="coordinates",
                centre=GeoPoint(lat=29.765, lon=120.3))


def decision(place: Place | None) -> RoutingDecision:
    return RoutingDecision(
        category=Category.NEIGHBOR, category_confidence=1, risk=Risk.BLUE, tier=Tier.VILLAGE,
        lead_department=Department.VILLAGE_MEDIATION, place=place,
        sla=Sla(accept_by=NOW, resolve_by=NOW), explanation=Explanation(zh="", en=""),
        rules_version="t")


def reported(location: GeoPoint | None) -> CaseReported:
    return CaseReported(case_id="c1", channel=Channel.GRID, external_id="g1", received_at=NOW,
                        text="噪音", location=location)


def test_the_reports_coordinates_are_the_cases_point() -> None:
    assert reported_position(reported(GeoPoint(lat=29.76, lon=120.29))) == {
        "lat": 29.76, "lon": 120.29, "position": REPORTED}
    assert reported_position(reported(None)) == {}


def test_the_places_centre_is_the_point_unless_the_report_had_one() -> None:
    assert routed_position(None, decision(VILLAGE)) == {
        "place_code": "330699101201", "lat": 29.765, "lon": 120.3, "position": PLACE}
    assert routed_position(REPORTED, decision(VILLAGE)) == {"place_code": "330699101201"}
    unplaced = VILLAGE.model_copy(update={"centre": None})
    assert routed_position(None, decision(unplaced)) == {
        "place_code": "330699101201", "lat": None, "lon": None, "position": None}
    # A decision from before places (or a dispatcher's copy of one) changes nothing.
    assert routed_position(REPORTED, decision(None)) == {}


def test_erasure_moves_the_point_to_the_places_centre() -> None:
    assert erased_position(decision(VILLAGE).model_dump(mode="json")) == {
        "lat": 29.765, "lon": 120.3, "position": PLACE}
    assert erased_position(decision(None).model_dump(mode="json")) == {
        "lat": None, "lon": None, "position": None}
    assert erased_position(None) == {"lat": None, "lon": None, "position": None}


def test_a_bounding_box_is_four_numbers_in_order() -> None:
    assert parse_bbox("120.22,29.72,120.26,29.78") == (120.22, 29.72, 120.26, 29.78)
    assert parse_bbox(" 120 , 29 , 121 , 30 ") == (120.0, 29.0, 121.0, 30.0)


@pytest.mark.parametrize(("text", "says"), [
    ("120.22,29.72,120.26", "four numbers"),
    ("120.22,29.72,120.26,29.78,1", "four numbers"),
    ("", "four numbers"),
    ("a,b,c,d", "must be a number"),
    ("120,29,121,nan", "latitudes"),
    ("181,29,182,30", "longitudes"),
    ("120,-91,121,30", "latitudes"),
    ("121,29,120,30", "minimum must not exceed"),
    ("120,30,121,29", "minimum must not exceed"),
    ("120,29,inf,30", "longitudes"),
])
def test_a_bad_bounding_box_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_bbox(text)


def sql(condition: Any) -> str:
    return str(condition.compile(dialect=postgresql.dialect(),
                                 compile_kwargs={"literal_binds": True}))


def test_a_subtree_is_a_range_of_codes_not_a_pattern() -> None:
    assert sql(store.subtree(store.C.place_code, "330699101")) == (
        "mediation_cases.place_code >= '330699101' AND "
        "mediation_cases.place_code <= '3306991019999999'")
    assert "LIKE" not in sql(store.within_jurisdictions({"330699"}))


def test_the_geojson_contract_takes_a_page_and_its_schema_refers_to_the_summary() -> None:
    page = {"type": "FeatureCollection", "next_cursor": None, "features": [{
        "type": "Feature", "id": "FQ1", "geometry": {"type": "Point",
                                                     "coordinates": [120.3, 29.765]},
        "properties": {"case_id": "FQ1", "status": "routed", "version": 2, "channel": "grid",
                       "external_id": "g1", "received_at": NOW.isoformat(),
                       "category": None, "risk": None, "tier": None, "lead_department": None,
                       "cooperating_departments": [], "jurisdiction_code": None,
                       "routing_round": 1, "accept_by": None, "resolve_by": None,
                       "overdue": False}}]}
    assert CaseFeatureCollection.model_validate(page).features[0].geometry.coordinates == [
        120.3, 29.765]
    schema = case_geojson_schema()
    feature = schema["properties"]["features"]["items"]
    assert feature["properties"]["properties"] == {"$ref": "#/components/schemas/CaseSummary"}
    assert "$defs" not in schema and "$ref" not in str(feature["properties"]["geometry"])
