"""A 12345 order's deadline and urgency bind the case's limits where they are earlier than
the policy's, and the decision says whose each limit is."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts.enums import Channel, LimitSource, Risk, Tier, Urgency
from services.router.domain import JurisdictionTree, RoutingRules, route_case
from services.router.domain.sla import earlier, hotline_limits, time_limits
from tests.unit.router.conftest import RECEIVED_AT, report

NOISE = "对门邻居装修噪音扰民，沟通无果。"  # village: accept in 24 h, resolve in 7 days
DAY, HOUR = timedelta(days=1), timedelta(hours=1)
P, HL = LimitSource.POLICY, LimitSource.HOTLINE


def test_a_3_day_deadline_gives_a_3_day_limit(rules: RoutingRules,
                                                tree: JurisdictionTree) -> None:
    decision = route_case(report(NOISE, deadline=RECEIVED_AT + 3 * DAY), rules, tree)
    assert decision.sla.resolve_by == RECEIVED_AT + 3 * DAY
    assert decision.sla.resolve_by_source is HL
    assert decision.sla.accept_by == RECEIVED_AT + 24 * HOUR
    assert decision.sla.accept_by_source is P
    assert "sla.resolve.hotline_deadline" in decision.rules_fired
    assert "sla.resolve.village" in decision.rules_fired  # the policy's, overruled


def test_a_deadline_later_than_the_policys_leaves_the_policys(
        rules: RoutingRules, tree: JurisdictionTree) -> None:
    decision = route_case(report(NOISE, deadline=RECEIVED_AT + 20 * DAY), rules, tree)
    assert (decision.sla.resolve_by, decision.sla.resolve_by_source) == (
        RECEIVED_AT + 7 * DAY, P)
    assert not any("hotline" in rule for rule in decision.rules_fired)


@pytest.mark.parametrize(("urgency", "accept", "resolve", "sources"), [
    (Urgency.NORMAL, 24 * HOUR, 7 * DAY, (P, P)),
    (Urgency.URGENT, 2 * HOUR, 5 * DAY, (HL, HL)),
    (Urgency.VERY_URGENT, 1 * HOUR, 2 * DAY, (HL, HL)),
])
def test_urgency_asks_for_its_own_limits(rules: RoutingRules, tree: JurisdictionTree,
                                         urgency: Urgency, accept: timedelta,
                                         resolve: timedelta,
                                         sources: tuple[LimitSource, LimitSource]) -> None:
    sla = route_case(report(NOISE, urgency=urgency), rules, tree).sla
    assert (sla.accept_by - RECEIVED_AT, sla.resolve_by - RECEIVED_AT) == (accept, resolve)
    assert (sla.accept_by_source, sla.resolve_by_source) == sources


def test_the_earliest_of_deadline_urgency_and_policy_wins(rules: RoutingRules) -> None:
    asked = hotline_limits(report(NOISE, urgency=Urgency.URGENT,
                                  deadline=RECEIVED_AT + 4 * DAY), rules.sla, True)
    assert asked.resolve_by == RECEIVED_AT + 4 * DAY  # earlier than urgent's 5 days
    asked = hotline_limits(report(NOISE, urgency=Urgency.URGENT,
                                  deadline=RECEIVED_AT + 9 * DAY), rules.sla, True)
    assert asked.resolve_by == RECEIVED_AT + 5 * DAY


def test_a_tie_is_the_policys() -> None:
    assert earlier(RECEIVED_AT, RECEIVED_AT) == (RECEIVED_AT, P)
    assert earlier(RECEIVED_AT, None) == (RECEIVED_AT, P)
    assert earlier(RECEIVED_AT, RECEIVED_AT - HOUR) == (RECEIVED_AT - HOUR, HL)


def test_other_channels_deadlines_are_not_the_hotlines(rules: RoutingRules) -> None:
    grid = report(NOISE, Channel.GRID, urgency=Urgency.VERY_URGENT,
                  deadline=RECEIVED_AT + DAY)
    assert hotline_limits(grid, rules.sla, True).resolve_by is None
    assert hotline_limits(grid, rules.sla, True).accept_by is None


def test_a_case_routed_again_keeps_the_deadline_but_not_the_urgencys_acceptance(
        rules: RoutingRules) -> None:
    """签收 happens once: after an escalation the acceptance limit is the policy's, from
    then; the order's deadline still binds the resolution."""
    order = report(NOISE, urgency=Urgency.VERY_URGENT, deadline=RECEIVED_AT + 3 * DAY)
    later = RECEIVED_AT + DAY
    limits = time_limits(order, Risk.BLUE, Tier.TOWN, rules, later)
    assert (limits.sla.accept_by, limits.sla.accept_by_source) == (later + 24 * HOUR, P)
    assert (limits.sla.resolve_by, limits.sla.resolve_by_source) == (
        RECEIVED_AT + 2 * DAY, HL)
