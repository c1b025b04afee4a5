"""Risk level (red, orange, yellow, blue): the highest level with a rule that holds."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.enums import Risk
from services.router.domain.facts import CaseFacts, evidence
from services.router.domain.rules import RiskRule, RoutingRules


@dataclass(frozen=True)
class RiskVerdict:
    risk: Risk
    signals: list[str]          # what raised it, strongest level first
    fired: list[str]            # every risk rule that holds, at any level
    reasons: list[RiskRule]     # the rules that hold at the level chosen


def assess_risk(facts: CaseFacts, rules: RoutingRules) -> RiskVerdict:
    risk = Risk.BLUE
    reasons: list[RiskRule] = []
    fired: list[str] = []
    signals: list[str] = []
    for level, level_rules in rules.risk_levels:
        holding = [rule for rule, test in level_rules if test(facts)]
        if not holding:
            continue
        if risk == Risk.BLUE:
            risk, reasons = level, holding
        for rule in holding:
            fired.append(rule.id)
            signals.extend(evidence(rule.when, facts))
    return RiskVerdict(risk, list(dict.fromkeys(signals)), fired, reasons)
