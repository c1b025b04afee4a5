"""The facts a rule's `when` is tested against, gathered once per case."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from contracts.enums import Category, Channel, Department, Risk
from services.router.domain.jurisdictions import Level

if TYPE_CHECKING:
    # rules.py compiles each `when` with test_of below, so it imports this module.
    from services.router.domain.rules import When


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


Test = Callable[[CaseFacts], bool]


def test_of(when: When) -> Test:
    """A rule's `when` as one function of the facts: every condition it gives must hold.

    Built once per rules load, so that routing a case calls one small function per rule.
    """
    checks = [_check(name, value) for name, value in when.__dict__.items() if value is not None]
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    return lambda facts: all(check(facts) for check in checks)


def _always(facts: CaseFacts) -> bool:
    return True


def _check(name: str, value: Any) -> Test:
    if name in ("channel", "category", "risk", "lead"):
        allowed = frozenset(value)
        return lambda facts: getattr(facts, name) in allowed
    if name == "signal":
        names = tuple(value)
        return lambda facts: any(signal in facts.signals for signal in names)
    if name == "amount_at_least":
        return lambda facts: facts.amount is not None and facts.amount >= value
    if name == "people_at_least":
        return lambda facts: facts.people is not None and facts.people >= value
    if name == "prior_related_at_least":
        return lambda facts: facts.prior_related >= value
    if name == "parties_in_different":
        # Parties in different towns are also in different villages.
        depth = Level(value).depth
        return lambda facts: (facts.parties_apart is not None
                              and facts.parties_apart.depth <= depth)
    raise ValueError(f"no test for the condition {name!r}")


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
