"""The facts a rule's `when` is tested against, gathered once per case."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from contracts.enums import Category, Channel, Department, Risk
from services.router.domain.jurisdictions import Level
from services.router.domain.rules import Conditions, When


@dataclass(frozen=True, slots=True)
class CaseFacts:
    channel: Channel
    category: Category
    amount: float | None
    people: int | None
    signals: Mapping[str, list[str]]
    prior_related: int
    parties_apart: Level | None   # town: parties in different towns; village: villages
    risk: Risk | None = None
    lead: Department | None = None

    def with_risk(self, risk: Risk) -> CaseFacts:
        return CaseFacts(self.channel, self.category, self.amount, self.people, self.signals,
                         self.prior_related, self.parties_apart, risk, self.lead)

    def with_lead(self, lead: Department) -> CaseFacts:
        return CaseFacts(self.channel, self.category, self.amount, self.people, self.signals,
                         self.prior_related, self.parties_apart, self.risk, lead)


def holds(conditions: Conditions, facts: CaseFacts) -> bool:
    """True when every condition (from a rule's `when`) holds for the case."""
    for name, value in conditions:
        if not _TESTS[name](facts, value):
            return False
    return True


def _parties_apart(facts: CaseFacts, wanted: str) -> bool:
    # Parties in different towns are also in different villages.
    return facts.parties_apart is not None and facts.parties_apart.depth <= Level(wanted).depth


_TESTS: dict[str, Callable[[CaseFacts, Any], bool]] = {
    "channel": lambda facts, channels: facts.channel in channels,
    "category": lambda facts, categories: facts.category in categories,
    "risk": lambda facts, risks: facts.risk in risks,
    "lead": lambda facts, leads: facts.lead in leads,
    "signal": lambda facts, names: any(name in facts.signals for name in names),
    "amount_at_least": lambda facts, least: facts.amount is not None and facts.amount >= least,
    "people_at_least": lambda facts, least: facts.people is not None and facts.people >= least,
    "prior_related_at_least": lambda facts, least: facts.prior_related >= least,
    "parties_in_different": _parties_apart,
}


def evidence(when: When, facts: CaseFacts) -> list[str]:
    """What made `when` hold, as short 'kind:value' strings (threat:扬言, people:15)."""
    shown: list[str] = []
    for name in when.signal or ():
        shown.extend(f"{name}:{word}" for word in facts.signals.get(name, ()))
    if when.amount_at_least is not None and facts.amount is not None:
        shown.append(f"amount:{facts.amount:.0f}")
    if when.people_at_least is not None and facts.people is not None:
        shown.append(f"people:{facts.people}")
    if when.prior_related_at_least is not None:
        shown.append(f"prior_related:{facts.prior_related}")
    if when.parties_in_different is not None and facts.parties_apart is not None:
        shown.append(f"parties_apart:{facts.parties_apart.value}")
    return shown
