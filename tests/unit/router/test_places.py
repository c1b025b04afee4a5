"""Coordinates to a jurisdiction on the sample county: point in polygon, the nearest boundary
or centre within the maximum distance, the grid within the village, and where coordinates
stand among a report's other clues."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import yaml

from contracts.enums import Channel, Tier
from contracts.events import GeoPoint
from services.router.domain import (
    JurisdictionsError,
    JurisdictionTree,
    RoutingRules,
    parse_jurisdictions,
    route_case,
)
from services.router.domain.places import PlaceIndex, Plane, Shape, contains, distance_to_boundary
from tests.unit.router.conftest import JURISDICTIONS_PATH, report

JIANGBIN = "330699001001"          # 江滨社区, 城关街道: lon 120.22-120.24, lat 29.75-29.78
FENGYUAN = "330699101201"          # 枫源村, 枫桥镇: lon 120.2867-120.3133, lat 29.75-29.78
XINHUA_FENGQIAO = "330699101202"   # 新华村, 枫桥镇: lon 120.3133-120.34, lat 29.75-29.78
XINHUA_BAITA = "330699102203"      # 新华村, 白塔镇: lon 120.14-120.18, lat 29.72-29.75
CHENGGUAN, FENGQIAO = "330699001", "330699101"
NOISE = "邻居家装修噪音扰民，多次沟通无果"


def at(lat: float, lon: float) -> GeoPoint:
    return GeoPoint(lat=lat, lon=lon)


# ---- plane geometry --------------------------------------------------------------------

L_SHAPE = [(0.0, 0.0), (4.0, 0.0), (4.0, 1.0), (1.0, 1.0), (1.0, 4.0), (0.0, 4.0)]


@pytest.mark.parametrize(("point", "inside"), [
    ((0.5, 0.5), True), ((3.5, 0.5), True), ((0.5, 3.5), True),
    ((2.0, 2.0), False),   # in the L's notch: outside a concave polygon
    ((5.0, 0.5), False), ((-0.1, 2.0), False),
    ((4.0, 0.5), True),    # on the boundary
])
def test_point_in_a_concave_polygon(point: tuple[float, float], inside: bool) -> None:
    assert contains(L_SHAPE, point) is inside


def test_distance_to_the_nearest_edge_not_the_nearest_corner() -> None:
    assert distance_to_boundary(L_SHAPE, (2.0, 2.0)) == pytest.approx(1.0)
    assert distance_to_boundary(L_SHAPE, (6.0, 0.5)) == pytest.approx(2.0)


def test_the_plane_measures_metres_in_a_county() -> None:
    plane = Plane(29.75)
    (x0, y0), (x1, y1) = plane.project((120.0, 29.75)), plane.project((120.01, 29.76))
    assert y1 - y0 == pytest.approx(1111.95, rel=1e-3)            # 0.01° of latitude
    assert x1 - x0 == pytest.approx(1111.95 * math.cos(math.radians(29.75)), rel=1e-3)


def test_an_index_prefers_the_deeper_node_that_holds_the_point() -> None:
    square = ((0.0, 0.0), (0.01, 0.0), (0.01, 0.01), (0.0, 0.01))
    index = PlaceIndex([Shape("v", None, 2, boundary=square),
                        Shape("v1", "v", 3, centre=(0.002, 0.005)),
                        Shape("v2", "v", 3, centre=(0.008, 0.005))], max_distance_m=500)
    assert index.find(0.007, 0.001).code == "v2"  # type: ignore[union-attr]
    assert index.find(0.003, 0.009).code == "v1"  # type: ignore[union-attr]
    near = index.find(0.013, 0.005)               # 333 m east of the square
    assert near is not None and near.code == "v2" and near.distance_m == pytest.approx(334, 1)
    assert index.find(0.02, 0.005) is None        # 1.1 km: outside


# ---- the sample county ----------------------------------------------------------------

@pytest.mark.parametrize(("lat", "lon", "code"), [
    (29.765, 120.2240, JIANGBIN + "001"),          # inside 江滨社区, its first grid's side
    (29.765, 120.2370, JIANGBIN + "003"),
    (29.765, 120.2950, FENGYUAN + "001"),          # 枫源村, west half
    (29.760, 120.3100, FENGYUAN + "002"),          # 枫源村, east half
    (29.735, 120.1600, XINHUA_BAITA + "001"),      # 新华村 of 白塔镇...
    (29.765, 120.3300, XINHUA_FENGQIAO + "002"),   # ...and of 枫桥镇: the point tells them apart
])
def test_a_point_inside_a_village_lands_in_it_and_its_nearest_grid(
        tree: JurisdictionTree, lat: float, lon: float, code: str) -> None:
    node = tree.by_point(lat, lon)
    assert node is not None and node.code == code


def test_a_point_just_outside_the_county_goes_to_the_nearest_boundary(
        tree: JurisdictionTree) -> None:
    # 29.785 is about 560 m north of 江滨社区's northern edge (29.78).
    node = tree.by_point(29.785, 120.2250)
    assert node is not None and node.parent == JIANGBIN


@pytest.mark.parametrize(("lat", "lon"), [
    (29.80, 120.30),      # 2.2 km north of 枫桥镇: beyond max_distance_m (2000)
    (29.60, 120.30),      # 4.4 km south
    (39.90, 116.40),      # Beijing
    (0.0, 0.0),
])
def test_a_point_farther_than_the_maximum_is_outside_the_county(
        tree: JurisdictionTree, lat: float, lon: float) -> None:
    assert tree.by_point(lat, lon) is None


def test_every_village_and_grid_of_the_sample_is_on_the_map(tree: JurisdictionTree) -> None:
    for node in tree.nodes():
        centre = tree.centre(node.code)
        assert centre is not None, node.code
        found = tree.by_point(centre[1], centre[0])
        # A village's or grid's own centre lands in it (a grid centre: that very grid).
        if node.level.value == "grid":
            assert found is not None and found.code == node.code
        elif node.level.value == "village":
            assert found is not None and found.parent == node.code


# ---- among a report's other clues -----------------------------------------------------

def test_a_grid_report_with_only_coordinates_lands_in_its_village(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    decision = route_case(report(NOISE, Channel.GRID, location=at(29.765, 120.2950)),
                          rules, tree)
    assert decision.tier is Tier.VILLAGE
    assert decision.jurisdiction is not None and decision.jurisdiction.code == FENGYUAN
    assert decision.place is not None
    assert (decision.place.code, decision.place.level, decision.place.source) == (
        FENGYUAN + "001", "grid", "coordinates")
    assert decision.place.centre is not None
    assert tree.by_point(decision.place.centre.lat, decision.place.centre.lon) == tree.get(
        FENGYUAN + "001")
    assert "jurisdiction.coordinates" in decision.rules_fired
    assert "属地枫源村（据坐标定位）" in decision.explanation.zh
    assert "(placed by coordinates)" in decision.explanation.en


def test_a_grid_code_beats_coordinates(rules: RoutingRules, tree: JurisdictionTree) -> None:
    decision = route_case(report(NOISE, Channel.GRID, grid_code=JIANGBIN + "002",
                                 location=at(29.765, 120.2950)), rules, tree)
    assert decision.place is not None and decision.place.code == JIANGBIN + "002"
    assert decision.place.source == "grid_code"
    assert "jurisdiction.coordinates" not in decision.rules_fired


def test_coordinates_narrow_a_towns_code_and_beat_the_address(tree: JurisdictionTree) -> None:
    located = tree.locate(report(NOISE, region_code=FENGQIAO, address="枫桥镇新华村",
                                 location=at(29.765, 120.2950)))
    assert located is not None and located.source == "coordinates"
    assert located.node.parent == FENGYUAN


def test_coordinates_that_contradict_the_code_are_ignored(tree: JurisdictionTree) -> None:
    # 城关街道's code, but a point in 枫桥镇: the code stands, the address narrows it.
    located = tree.locate(report(NOISE, region_code=CHENGGUAN, address="城关街道江滨社区",
                                 location=at(29.765, 120.2950)))
    assert located is not None and (located.node.code, located.source) == (JIANGBIN, "address")


def test_outside_the_county_routing_falls_back_as_before(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    far = route_case(report(NOISE, Channel.GRID, address="白塔镇上林村",
                            location=at(39.9, 116.4)), rules, tree)
    assert far.jurisdiction is not None and far.jurisdiction.name == "上林村"
    assert far.place is not None and far.place.source == "address"
    assert "jurisdiction.coordinates" not in far.rules_fired
    nowhere = route_case(report(NOISE, Channel.GRID, location=at(39.9, 116.4)), rules, tree)
    assert nowhere.jurisdiction is None and nowhere.place is None


def test_a_town_tier_case_names_its_town_and_keeps_its_village_as_the_place(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    decision = route_case(report("拖欠农民工工资三个月，老板一直不给", Channel.GRID,
                                 location=at(29.735, 120.1600)), rules, tree)
    assert decision.tier is not Tier.VILLAGE
    assert decision.jurisdiction is not None and decision.jurisdiction.level != "village"
    assert decision.place is not None and decision.place.code.startswith(XINHUA_BAITA)


# ---- the file ---------------------------------------------------------------------------

@pytest.fixture
def data() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(JURISDICTIONS_PATH.read_text(encoding="utf-8"))
    return copy.deepcopy(loaded)


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(JurisdictionsError) as caught:
        parse_jurisdictions(data, source="test.yaml")
    return caught.value.problems


def test_a_boundary_needs_three_corners(data: dict[str, Any]) -> None:
    data["towns"][0]["villages"][0]["boundary"] = [[120.22, 29.75], [120.24, 29.75],
                                                   [120.22, 29.75]]
    assert problems_of(data) == ["towns[0].villages[0].boundary: needs at least 3 different "
                                 "corners"]


def test_coordinates_must_be_degrees(data: dict[str, Any]) -> None:
    data["towns"][0]["villages"][0]["grids"][0]["centre"] = [29.76, 120.22]  # lat, lon swapped
    assert problems_of(data) == ["towns[0].villages[0].grids[0].centre[1]: Input should be "
                                 "less than or equal to 90"]


def test_the_maximum_distance_is_positive(data: dict[str, Any]) -> None:
    data["places"] = {"max_distance_m": 0}
    assert any(p.startswith("places.max_distance_m") for p in problems_of(data))


def test_a_tree_without_shapes_reads_no_coordinates(data: dict[str, Any]) -> None:
    for town in data["towns"]:
        for village in town["villages"]:
            village.pop("boundary", None)
            for grid in village["grids"]:
                grid.pop("centre", None)
    tree = parse_jurisdictions(data)
    assert tree.by_point(29.765, 120.2950) is None and tree.centre(FENGYUAN) is None
