"""Whose time limit: the routing decision says whether the policy or the 12345 order set
each limit; the case keeps it; settings' overrides replace the policy's only; an extension
the hotline approved stays when the case is routed again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.enums import Category, Channel, Department, LimitSource, Risk, Status, Tier
from contracts.events import CaseRouted, Explanation, RoutingDecision, Sla
from services.mediation.domain.time_limits import LimitOverrides
from services.mediation.handlers import routing_changes
from services.mediation.store import Case

RECEIVED = datetime(2026, 12, 1, 8, tzinfo=UTC)
DAY = timedelta(days=1)
HL, P = LimitSource.HOTLINE, LimitSource.POLICY


def routed(round_: int = 1, resolve_source: LimitSource = HL, resolve_days: float = 3,
           at: datetime = RECEIVED) -> CaseRouted:
    return CaseRouted(
        case_id="C1", channel=Channel.HOTLINE_12345, external_id="GD-1", received_at=RECEIVED,
        routed_at=at, routing_round=round_, decision=RoutingDecision(
            category=Category.NEIGHBOR, category_confidence=0.9, risk=Risk.BLUE,
            tier=Tier.VILLAGE, lead_department=Department.VILLAGE_MEDIATION,
            sla=Sla(accept_by=RECEIVED + DAY, resolve_by=RECEIVED + resolve_days * DAY,
                    resolve_by_source=resolve_source),
            explanation=Explanation(zh="测试", en="test"), rules_version="test"))


def new_case(**fields: object) -> Case:
    values: dict[str, object] = {
        "case_id": "C1", "channel": "hotline_12345", "external_id": "GD-1",
        "status": Status.REPORTED.value, "version": 1, "received_at": RECEIVED,
        "updated_at": RECEIVED, "cooperating_departments": [], **fields}
    return Case(**values)


def test_the_case_keeps_whose_each_limit_is() -> None:
    changes = routing_changes(new_case(), routed(), LimitOverrides())
    assert changes["resolve_by"] == RECEIVED + 3 * DAY
    assert (changes["accept_by_source"], changes["resolve_by_source"]) == ("policy", "hotline")


def test_overrides_replace_the_policys_limits_not_the_hotlines() -> None:
    short = LimitOverrides(acceptance=timedelta(seconds=30), resolution=timedelta(seconds=60))
    changes = routing_changes(new_case(), routed(), short)
    assert changes["accept_by"] == RECEIVED + timedelta(seconds=30)  # the policy's: replaced
    assert changes["resolve_by"] == RECEIVED + 3 * DAY  # the hotline's: kept
    policy_only = routing_changes(new_case(), routed(resolve_source=P, resolve_days=7), short)
    assert policy_only["resolve_by"] == RECEIVED + timedelta(seconds=60)


def test_an_approved_extension_outlives_a_new_routing_round() -> None:
    extended = RECEIVED + 8 * DAY
    case = new_case(status=Status.ESCALATED.value, routing_round=1, limits_from=RECEIVED,
                    resolve_by=extended, resolve_by_source="extension",
                    escalated_at=RECEIVED + 2 * DAY)
    changes = routing_changes(case, routed(round_=2, at=RECEIVED + 2 * DAY), LimitOverrides())
    assert (changes["resolve_by"], changes["resolve_by_source"]) == (extended, "extension")
    # The policy's own limit for the new round, later than the extension, is the policy's.
    later = routing_changes(case, routed(round_=2, resolve_source=P, resolve_days=30,
                                         at=RECEIVED + 2 * DAY), LimitOverrides())
    assert later["resolve_by_source"] == "policy"
