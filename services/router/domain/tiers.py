"""The tier that works a case: the category's base tier, raised (never lowered) by the rules."""

from __future__ import annotations

from dataclasses import dataclass, replace

from contracts.enums import Tier
from services.router.domain.facts import CaseFacts
from services.router.domain.rules import RoutingRules, TierRaise

_TIERS = [Tier.VILLAGE, Tier.TOWN, Tier.COUNTY]
_RANK = {tier: rank for rank, tier in enumerate(_TIERS)}

ESCALATION_RULE = "tier.escalation"
RETURN_RULE = "tier.kept_on_return"


def keep_tier_on_return(verdict: TierVerdict, tier: Tier) -> TierVerdict:
    """A returned case is routed again at the tier that had it, whatever the rules say now:
    a return says the department was wrong, not the tier."""
    return replace(verdict, tier=tier, fired=[*verdict.fired, RETURN_RULE])


@dataclass(frozen=True)
class TierVerdict:
    tier: Tier
    base: Tier
    fired: list[str]
    raised_by: list[TierRaise]          # the raises that moved the tier up
    escalated_from: Tier | None = None  # set when escalation moved the tier up


def decide_tier(facts: CaseFacts, rules: RoutingRules, *,
                escalate_from: Tier | None = None) -> TierVerdict:
    base = rules.tiers.base.by_category.get(facts.category, rules.tiers.base.default)
    tier = base
    fired = [f"tier.base.{base.value}"]
    raised_by: list[TierRaise] = []
    for rule, test in rules.raises:
        if not test(facts):
            continue
        fired.append(rule.id)
        if rule.to is not None:
            raised = rule.to if _RANK[rule.to] > _RANK[tier] else tier
        else:
            raised = _TIERS[min(_RANK[tier] + (rule.steps or 0), len(_TIERS) - 1)]
        if raised != tier:
            tier = raised
            raised_by.append(rule)
    escalated_from: Tier | None = None
    if escalate_from is not None:
        # A failed mediation goes at least one tier above the one that tried.
        fired.append(ESCALATION_RULE)
        floor = escalate_from.above()
        if _RANK[floor] > _RANK[tier]:
            tier = floor
        escalated_from = escalate_from
    return TierVerdict(tier, base, fired, raised_by, escalated_from)
