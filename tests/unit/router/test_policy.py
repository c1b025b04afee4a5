"""The routing decision: tiers, departments, time limits, escalation and the reasons given."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

import pytest
import yaml

from contracts.enums import Category, Channel, Department, Risk, Tier
from services.router.domain import JurisdictionTree, RoutingRules, parse_rules, route_case
from tests.unit.router.conftest import RECEIVED_AT, RULES_PATH, report

NEIGHBOUR_NOISE = "对门邻居装修噪音扰民，沟通无果。"


def test_a_small_neighbour_dispute_stays_in_the_village(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    decision = route_case(report(NEIGHBOUR_NOISE), rules, tree)
    assert (decision.category, decision.risk, decision.tier) == (
        Category.NEIGHBOR, Risk.BLUE, Tier.VILLAGE)
    assert decision.lead_department == Department.VILLAGE_MEDIATION
    assert decision.cooperating_departments == [Department.JUDICIAL_OFFICE]
    assert decision.rules_fired[:3] == ["category.text", "tier.base.village", "lead.village_tier"]
    assert decision.rules_version == rules.version


@pytest.mark.parametrize(("amount", "tier", "risk"), [
    (49_999, Tier.VILLAGE, Risk.BLUE), (50_000, Tier.TOWN, Risk.BLUE),
    (100_000, Tier.TOWN, Risk.YELLOW), (500_000, Tier.COUNTY, Risk.YELLOW),
])
def test_debts_go_up_with_the_amount(rules: RoutingRules, tree: JurisdictionTree,
                                     amount: float, tier: Tier, risk: Risk) -> None:
    decision = route_case(report("朋友借款逾期不还", amount=amount), rules, tree)
    assert (decision.category, decision.tier, decision.risk) == (Category.DEBT_FINANCE, tier, risk)


def test_the_channels_amount_beats_the_text(rules: RoutingRules, tree: JurisdictionTree) -> None:
    decision = route_case(report("朋友借我五千元不还", amount=600_000), rules, tree)
    assert decision.tier == Tier.COUNTY and "amount:600000" in decision.risk_signals


def test_the_text_amount_is_used_when_the_channel_has_none(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    decision = route_case(report("表哥向我借了一百二十万元做生意，到期不还"), rules, tree)
    assert decision.tier == Tier.COUNTY and decision.risk == Risk.YELLOW


@pytest.mark.parametrize(("people", "risk", "tier"), [
    (4, Risk.BLUE, Tier.TOWN), (5, Risk.ORANGE, Tier.TOWN), (10, Risk.ORANGE, Tier.COUNTY)])
def test_head_counts_make_a_collective_dispute(rules: RoutingRules, tree: JurisdictionTree,
                                               people: int, risk: Risk, tier: Tier) -> None:
    decision = route_case(report("工人讨要拖欠的工资", people_count=people), rules, tree)
    assert (decision.risk, decision.tier) == (risk, tier)


def test_the_channels_injuries_field_beats_the_text(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    said_hurt = route_case(report("双方推搡，一方称受伤", Channel.POLICE, injuries=False),
                           rules, tree)
    field_hurt = route_case(report("两家因琐事发生口角后互殴", Channel.POLICE, injuries=True),
                            rules, tree)
    assert said_hurt.risk == Risk.BLUE
    assert field_hurt.risk == Risk.YELLOW and "injury:injuries" in field_hurt.risk_signals


def test_a_death_is_orange_and_county(rules: RoutingRules, tree: JurisdictionTree) -> None:
    decision = route_case(report("车祸致行人当场死亡，双方就赔偿协商不成"), rules, tree)
    assert (decision.risk, decision.tier) == (Risk.ORANGE, Tier.COUNTY)
    assert "tier.raise.death" in decision.rules_fired


def test_one_prior_related_case_is_yellow(rules: RoutingRules, tree: JurisdictionTree) -> None:
    decision = route_case(report(NEIGHBOUR_NOISE), rules, tree, prior_related=1)
    assert (decision.risk, decision.tier) == (Risk.YELLOW, Tier.VILLAGE)
    assert "prior_related:1" in decision.risk_signals


def test_two_prior_related_cases_go_one_tier_up_from_the_base(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    neighbour = route_case(report(NEIGHBOUR_NOISE), rules, tree, prior_related=2)
    labour = route_case(report("快递公司拖欠我两个月工资"), rules, tree, prior_related=2)
    assert (neighbour.risk, neighbour.tier) == (Risk.ORANGE, Tier.TOWN)
    assert (labour.risk, labour.tier) == (Risk.ORANGE, Tier.COUNTY)
    assert "tier.raise.repeat" in labour.rules_fired


def test_a_court_referral_is_at_least_town_with_the_court_cooperating(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    deadline = RECEIVED_AT + timedelta(days=20)
    decision = route_case(report("原告要求被告返还借款八千元", Channel.COURT,
                                 channel_category="民间借贷纠纷", amount=8000,
                                 deadline=deadline), rules, tree)
    assert decision.tier == Tier.TOWN
    assert decision.lead_department == Department.JUDICIAL_OFFICE
    assert decision.cooperating_departments == [Department.COURT]
    assert decision.sla.resolve_by == deadline
    assert "sla.resolve.court_deadline" in decision.rules_fired


def test_a_court_referral_without_a_deadline_has_thirty_days(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    decision = route_case(report("原告要求被告支付货款", Channel.COURT,
                                 channel_category="买卖合同纠纷"), rules, tree)
    assert decision.sla.resolve_by == RECEIVED_AT + timedelta(days=30)


def test_red_risk_brings_the_police_and_two_hours_to_accept(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    decision = route_case(report("邻居扬言要找人打断我的腿"), rules, tree)
    assert (decision.risk, decision.tier) == (Risk.RED, Tier.TOWN)
    assert decision.lead_department == Department.JUDICIAL_OFFICE
    assert decision.cooperating_departments == [Department.POLICE_STATION]
    assert decision.sla.accept_by == RECEIVED_AT + timedelta(hours=2)
    assert "risk.red.threat" in decision.rules_fired
    assert any(signal.startswith("threat:") for signal in decision.risk_signals)


def test_cooperating_departments_come_in_policy_order_without_the_lead(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    village = route_case(report("两户邻居因装修噪音争吵，一方说要去上访", Channel.POLICE,
                                channel_category="邻里纠纷"), rules, tree)
    assert village.cooperating_departments == [
        Department.JUDICIAL_OFFICE, Department.POLICE_STATION, Department.PETITION_OFFICE]
    court = route_case(report("被告扬言要报复原告，原告多次信访", Channel.COURT,
                              channel_category="民间借贷纠纷"), rules, tree)
    assert court.lead_department == Department.JUDICIAL_OFFICE
    assert court.cooperating_departments == [
        Department.POLICE_STATION, Department.COURT, Department.PETITION_OFFICE]


@pytest.mark.parametrize(("text", "tier", "days"), [
    (NEIGHBOUR_NOISE, Tier.VILLAGE, 7), ("快递公司拖欠我两个月工资", Tier.TOWN, 15),
    ("棚户区改造的拆迁补偿款比邻居少", Tier.COUNTY, 30)])
def test_time_limits_by_tier(rules: RoutingRules, tree: JurisdictionTree,
                             text: str, tier: Tier, days: int) -> None:
    decision = route_case(report(text), rules, tree)
    assert decision.tier == tier
    assert decision.sla.accept_by == RECEIVED_AT + timedelta(hours=24)
    assert decision.sla.resolve_by == RECEIVED_AT + timedelta(days=days)


def test_escalation_goes_at_least_one_tier_above_and_says_so(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    now = RECEIVED_AT + timedelta(days=6)
    decision = route_case(report(NEIGHBOUR_NOISE), rules, tree, routing_round=2,
                          escalate_from=Tier.VILLAGE, now=now)
    assert decision.tier == Tier.TOWN
    assert decision.lead_department == Department.JUDICIAL_OFFICE
    assert "tier.escalation" in decision.rules_fired
    assert "escalated" in decision.explanation.en and "升级" in decision.explanation.zh
    assert decision.sla.resolve_by == now + timedelta(days=15)


def test_escalation_never_lowers_and_stops_at_county(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    decision = route_case(report("棚户区改造的拆迁补偿款比邻居少"), rules, tree,
                          escalate_from=Tier.COUNTY)
    assert decision.tier == Tier.COUNTY


def test_now_must_carry_a_timezone(rules: RoutingRules, tree: JurisdictionTree) -> None:
    with pytest.raises(ValueError, match="timezone"):
        route_case(report(NEIGHBOUR_NOISE), rules, tree, escalate_from=Tier.VILLAGE,
                   now=datetime(2026, 11, 3, 9, 0))


def test_the_channels_classification_decides_when_it_maps(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    decision = route_case(report("反映单位未按规定支付高温补贴。",
                                 channel_category="劳动保障"), rules, tree)
    assert decision.category == Category.LABOR
    assert decision.category_confidence == rules.scoring.channel_confidence
    assert decision.category_terms[0] == "劳动保障"
    assert decision.rules_fired[0] == "category.channel"


def test_a_classification_path_is_tried_part_by_part(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    decision = route_case(report("化粪池堵塞污水外溢", channel_category="城乡建设/物业管理"),
                          rules, tree)
    assert decision.category == Category.PROPERTY_MANAGEMENT


def test_an_unmapped_classification_leaves_it_to_the_text(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    decision = route_case(report("快递公司拖欠我两个月工资", Channel.POLICE,
                                 channel_category="经济纠纷"), rules, tree)
    assert decision.category == Category.LABOR
    assert decision.rules_fired[0] == "category.text"
    assert 0 < decision.category_confidence < rules.scoring.channel_confidence
    assert "工资" in decision.category_terms


def test_nothing_recognisable_is_other(rules: RoutingRules, tree: JurisdictionTree) -> None:
    decision = route_case(report("咨询办理居住证需要准备哪些材料"), rules, tree)
    assert (decision.category, decision.tier) == (Category.OTHER, Tier.TOWN)
    assert decision.lead_department == Department.JUDICIAL_OFFICE
    assert decision.category_terms == []
    assert decision.category_confidence == rules.scoring.no_terms_confidence


def test_the_explanation_is_one_line_in_each_language(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    decision = route_case(report("邻居扬言要找人打断我的腿"), rules, tree)
    for line in (decision.explanation.zh, decision.explanation.en):
        assert "\n" not in line
    assert "邻里纠纷" in decision.explanation.zh and "红色" in decision.explanation.zh
    assert "派出所" in decision.explanation.zh
    assert "risk red (threat of violence or an extreme act)" in decision.explanation.en


def test_the_policy_is_data(rules: RoutingRules, tree: JurisdictionTree) -> None:
    data: dict[str, Any] = copy.deepcopy(yaml.safe_load(RULES_PATH.read_text(encoding="utf-8")))
    data["version"] = "county-test-1"
    data["tiers"]["base"]["by_category"]["labor"] = "village"
    data["sla"]["resolve_days"]["village"] = 5
    changed = parse_rules(data)
    decision = route_case(report("快递公司拖欠我两个月工资"), changed, tree)
    assert decision.tier == Tier.VILLAGE and decision.rules_version == "county-test-1"
    assert decision.cooperating_departments == [Department.HR_SOCIAL_SECURITY]
    assert decision.sla.resolve_by == RECEIVED_AT + timedelta(days=5)


def test_routing_is_pure(rules: RoutingRules, tree: JurisdictionTree) -> None:
    case = report("邻居扬言要找人打断我的腿", region_code="330699101")
    assert route_case(case, rules, tree) == route_case(case, rules, tree)
