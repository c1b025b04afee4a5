"""Routing quality as staff saw it: of the cases the router decided first, how many staff
corrected (returned by the lead department, reassigned or dispatched by hand), and how many
the router flagged for review, by category, by the rule that chose the lead department and
by month. Pure: the API passes the first decisions and the corrections it read."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from contracts.enums import CorrectionKind

RETURN = CorrectionKind.RETURN.value
BY_HAND = frozenset({CorrectionKind.REASSIGN.value, CorrectionKind.DISPATCH.value})


@dataclass(frozen=True)
class FirstDecision:
    """The router's first decision on a case, as far as quality is concerned."""

    case_id: str
    routed_at: datetime
    category: str
    lead_rule: str
    flagged: bool


@dataclass
class Tally:
    routed: int = 0
    returned: int = 0
    reassigned: int = 0
    corrected: int = 0
    flagged: int = 0

    def add(self, kinds: set[str], flagged: bool) -> None:
        self.routed += 1
        self.returned += RETURN in kinds
        self.reassigned += bool(kinds & BY_HAND)
        self.corrected += bool(kinds)
        self.flagged += flagged

    def figures(self) -> dict[str, float | int]:
        def rate(n: int) -> float:
            return round(n / self.routed, 4) if self.routed else 0.0
        return {"routed": self.routed, "returned": self.returned,
                "reassigned": self.reassigned, "corrected": self.corrected,
                "flagged": self.flagged, "accuracy_as_seen": round(1 - rate(self.corrected), 4),
                "return_rate": rate(self.returned), "reassignment_rate": rate(self.reassigned),
                "review_flag_rate": rate(self.flagged)}


@dataclass
class Quality:
    overall: Tally = field(default_factory=Tally)
    by_category: dict[str, Tally] = field(default_factory=dict)
    by_rule: dict[str, Tally] = field(default_factory=dict)
    by_month: dict[str, Tally] = field(default_factory=dict)


def lead_rule(rules_fired: Iterable[str]) -> str:
    """The rule that chose the lead department (`lead.*`), or "unknown"."""
    return next((rule for rule in rules_fired if rule.startswith("lead.")), "unknown")


def measure(first: Iterable[FirstDecision], corrections: dict[str, set[str]]) -> Quality:
    """Tally each first decision with the kinds of correction its case had since."""
    quality = Quality()
    for decision in first:
        kinds = corrections.get(decision.case_id, set())
        month = decision.routed_at.strftime("%Y-%m")
        for tallies, key in ((quality.by_category, decision.category),
                             (quality.by_rule, decision.lead_rule),
                             (quality.by_month, month)):
            tallies.setdefault(key, Tally()).add(kinds, decision.flagged)
        quality.overall.add(kinds, decision.flagged)
    return quality
