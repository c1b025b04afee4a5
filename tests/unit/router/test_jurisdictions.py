"""The jurisdiction tree: loading, browsing, and finding a case's node from its fields."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from contracts.enums import Channel, Tier
from services.router.domain import (
    JurisdictionsError,
    JurisdictionTree,
    Level,
    RoutingRules,
    parse_jurisdictions,
    route_case,
)
from tests.unit.router.conftest import JURISDICTIONS_PATH, report

COUNTY, CHENGGUAN, FENGQIAO, BAITA = "330699", "330699001", "330699101", "330699102"
JIANGBIN = "330699001001"          # 江滨社区, 城关街道
FENGYUAN = "330699101201"          # 枫源村, 枫桥镇
XINHUA_FENGQIAO = "330699101202"   # 新华村, 枫桥镇
XINHUA_BAITA = "330699102203"      # 新华村, 白塔镇
LIQIAO = "330699101203"            # 栎桥村, 枫桥镇


def test_the_sample_county_has_every_level(tree: JurisdictionTree) -> None:
    assert tree.root.code == COUNTY and tree.root.level == Level.COUNTY
    assert len(tree.nodes(level=Level.TOWN)) == 6
    assert len(tree.nodes(level=Level.VILLAGE)) >= 20
    assert all(len(g.code) == 15 for g in tree.nodes(level=Level.GRID))


def test_nodes_by_level_and_parent(tree: JurisdictionTree) -> None:
    villages = tree.nodes(level=Level.VILLAGE, parent=FENGQIAO)
    assert [v.name for v in villages] == ["枫桥社区", "枫源村", "新华村", "栎桥村", "乐山村"]
    assert tree.nodes(parent=FENGQIAO) == villages
    assert tree.nodes(level=Level.VILLAGE, parent=COUNTY) == []
    assert len(tree.nodes(level=Level.VILLAGE, within=COUNTY)) == len(
        tree.nodes(level=Level.VILLAGE))


def test_get_ancestors_and_children(tree: JurisdictionTree) -> None:
    village = tree.get(FENGYUAN)
    assert village is not None and village.name == "枫源村" and village.parent == FENGQIAO
    assert [a.code for a in tree.ancestors(FENGYUAN)] == [FENGQIAO, COUNTY]
    assert [g.code for g in tree.children(FENGYUAN)] == [FENGYUAN + "001", FENGYUAN + "002"]
    assert tree.get("999999") is None
    assert village.ref().model_dump() == {"code": FENGYUAN, "name": "枫源村", "level": "village"}


@pytest.mark.parametrize(("code", "found"), [
    (FENGYUAN + "002", FENGYUAN + "002"),   # a grid
    (FENGYUAN, FENGYUAN),                   # a village
    (FENGQIAO, FENGQIAO),                   # a town
    (COUNTY, COUNTY),                       # the county
    (FENGQIAO + "299", FENGQIAO),           # an unknown village falls back to its town
    (FENGYUAN + "099", FENGYUAN),           # an unknown grid falls back to its village
])
def test_by_code(tree: JurisdictionTree, code: str, found: str) -> None:
    node = tree.by_code(code)
    assert node is not None and node.code == found


def test_a_code_of_another_county_is_not_found(tree: JurisdictionTree) -> None:
    assert tree.by_code("330602001001") is None


def test_police_stations_and_courts_map_to_their_nodes(tree: JurisdictionTree) -> None:
    station = tree.by_station("330699510300")
    court = tree.by_court("330699C101")
    assert station is not None and station.code == FENGQIAO
    assert court is not None and court.code == FENGQIAO
    assert tree.by_station("000") is None


@pytest.mark.parametrize(("address", "found"), [
    ("枫溪县枫桥镇枫源村3组12号", FENGYUAN),
    ("枫源村村委会旁", FENGYUAN),
    ("城关江滨路88号", CHENGGUAN),          # a road named after a community is still 城关
    ("城關街道江濱社區", JIANGBIN),          # traditional characters
    ("枫桥镇新华村", XINHUA_FENGQIAO),      # two 新华村: the town tells them apart
    ("白塔新华村5号", XINHUA_BAITA),
    ("新华村", COUNTY),                     # in doubt: the nearest node both share
    ("枫桥镇", FENGQIAO),
])
def test_by_address(tree: JurisdictionTree, address: str, found: str) -> None:
    node = tree.by_address(address)
    assert node is not None and node.code == found


def test_an_address_naming_no_place_is_not_found(tree: JurisdictionTree) -> None:
    assert tree.by_address("人民路18号") is None


def test_a_grid_code_comes_before_a_region_code(tree: JurisdictionTree) -> None:
    location = tree.locate(report("x", Channel.GRID, grid_code=LIQIAO + "001",
                                  region_code=CHENGGUAN))
    assert location is not None and location.node.code == LIQIAO + "001"
    assert location.source == "grid_code"


def test_an_address_narrows_a_code_to_a_node_below_it(tree: JurisdictionTree) -> None:
    location = tree.locate(report("x", region_code=FENGQIAO, address="枫源村5组"))
    assert location is not None and (location.node.code, location.source) == (FENGYUAN,
                                                                               "address")


def test_an_address_outside_the_code_is_ignored(tree: JurisdictionTree) -> None:
    location = tree.locate(report("x", region_code=FENGQIAO, address="城关江滨社区"))
    assert location is not None and (location.node.code, location.source) == (FENGQIAO,
                                                                               "region_code")


def test_station_and_court_codes_locate_referrals(tree: JurisdictionTree) -> None:
    by_station = tree.locate(report("x", Channel.POLICE, station_code="330699510400"))
    by_court = tree.locate(report("x", Channel.COURT, court_code="330699C000"))
    assert by_station is not None and by_station.node.code == BAITA
    assert by_court is not None and by_court.node.code == COUNTY


def test_the_text_names_the_place_when_nothing_else_does(tree: JurisdictionTree) -> None:
    location = tree.locate(report("枫桥镇栎桥村村民反映水渠被堵"))
    assert location is not None and (location.node.code, location.source) == (LIQIAO, "text")
    assert tree.locate(report("反映水渠被堵")) is None


def test_the_parties_addresses_locate_a_case_without_codes(tree: JurisdictionTree) -> None:
    same_village = tree.locate(report("x", parties=["枫桥镇枫源村3组", "枫源村5组"]))
    two_towns = tree.locate(report("x", parties=["枫桥镇枫源村", "白塔镇上林村"]))
    assert same_village is not None and (same_village.node.code, same_village.source) == (
        FENGYUAN, "parties")
    assert two_towns is not None and two_towns.node.code == COUNTY


def test_parties_apart(tree: JurisdictionTree) -> None:
    assert tree.parties_apart(["枫桥镇枫源村", "枫桥镇栎桥村"]) == Level.VILLAGE
    assert tree.parties_apart(["枫桥镇枫源村", "白塔镇上林村"]) == Level.TOWN
    assert tree.parties_apart(["枫桥镇枫源村", "枫源村2组"]) is None
    assert tree.parties_apart(["枫桥镇", "枫源村"]) is None   # same town, village unknown


def test_parties_in_different_villages_raise_a_neighbour_dispute_to_town(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    decision = route_case(report("两家因宅基地边界发生争执", parties=["枫桥镇枫源村", "枫桥镇栎桥村"]),
                          rules, tree)
    assert decision.tier == Tier.TOWN
    assert "tier.raise.cross_village" in decision.rules_fired


def test_parties_in_different_towns_raise_it_to_county(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    decision = route_case(report("两家因宅基地边界发生争执", parties=["枫桥镇枫源村", "白塔镇上林村"]),
                          rules, tree)
    assert decision.tier == Tier.COUNTY
    assert {"tier.raise.cross_village", "tier.raise.cross_town"} <= set(decision.rules_fired)


def test_the_decision_names_the_jurisdiction_at_its_tier(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    village_case = route_case(report("对门邻居噪音扰民", Channel.GRID, grid_code=FENGYUAN + "001"),
                              rules, tree)
    town_case = route_case(report("快递公司拖欠工资", Channel.GRID, grid_code=FENGYUAN + "001"),
                           rules, tree)
    assert village_case.jurisdiction is not None and town_case.jurisdiction is not None
    assert (village_case.jurisdiction.code, village_case.jurisdiction.level) == (FENGYUAN,
                                                                                 "village")
    assert (town_case.jurisdiction.code, town_case.jurisdiction.name) == (FENGQIAO, "枫桥镇")
    assert "jurisdiction.grid_code" in town_case.rules_fired


def test_no_jurisdiction_when_nothing_resolves(rules: RoutingRules, tree: JurisdictionTree) -> None:
    assert route_case(report("对门邻居噪音扰民"), rules, tree).jurisdiction is None


# ---- the data file ----------------------------------------------------------------------

@pytest.fixture
def data() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(JURISDICTIONS_PATH.read_text(encoding="utf-8"))
    return copy.deepcopy(loaded)


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(JurisdictionsError) as caught:
        parse_jurisdictions(data, source="test.yaml")
    return caught.value.problems


def test_a_village_code_must_start_with_its_towns(data: dict[str, Any]) -> None:
    data["towns"][0]["villages"][0]["code"] = "330699002009"
    problems = problems_of(data)
    assert ("towns[0].villages[0].code: 330699002009 does not start with its parent's code "
            "330699001") in problems


def test_codes_have_their_levels_length(data: dict[str, Any]) -> None:
    data["towns"][1]["code"] = "3306990021"
    assert problems_of(data)[0].startswith("towns[1].code: String should match pattern")


def test_offices_must_point_at_a_node(data: dict[str, Any]) -> None:
    data["courts"][1]["jurisdiction"] = "330699999"
    assert problems_of(data) == ["courts[1].jurisdiction: 330699999 is not a node of the tree"]


def test_codes_are_unique(data: dict[str, Any]) -> None:
    data["towns"][0]["villages"][1]["code"] = data["towns"][0]["villages"][0]["code"]
    problems = problems_of(data)
    assert problems[0].startswith("towns[0].villages[1].code: 330699001001 is already used at "
                                  "towns[0].villages[0]")
