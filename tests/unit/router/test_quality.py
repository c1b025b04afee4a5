"""Routing quality as staff saw it: tallies by category, rule and month."""

from __future__ import annotations

from datetime import UTC, datetime

from services.router.domain.quality import FirstDecision, lead_rule, measure


def first(case_id: str, category: str, month: int, flagged: bool = False,
          rule: str = "lead.category") -> FirstDecision:
    return FirstDecision(case_id, datetime(2026, month, 3, tzinfo=UTC), category, rule, flagged)


def test_each_first_decision_counts_once_with_its_corrections() -> None:
    quality = measure(
        [first("a", "neighbor", 11), first("b", "neighbor", 11, flagged=True),
         first("c", "labor", 12, rule="lead.village_tier"), first("d", "labor", 12)],
        {"a": {"return"}, "b": {"return", "reassign"}, "c": {"dispatch"}})
    overall = quality.overall.figures()
    assert (overall["routed"], overall["returned"], overall["reassigned"],
            overall["corrected"], overall["flagged"]) == (4, 2, 2, 3, 1)
    assert overall["accuracy_as_seen"] == 0.25
    assert quality.by_category["neighbor"].figures()["return_rate"] == 1.0
    assert quality.by_category["labor"].figures()["reassignment_rate"] == 0.5
    assert quality.by_rule["lead.village_tier"].corrected == 1
    assert {month: t.routed for month, t in quality.by_month.items()} == {
        "2026-11": 2, "2026-12": 2}


def test_nothing_routed_gives_zero_rates_not_an_error() -> None:
    figures = measure([], {}).overall.figures()
    assert figures["routed"] == 0 and figures["return_rate"] == 0.0
    assert figures["accuracy_as_seen"] == 1.0


def test_the_lead_rule_is_the_first_lead_rule_fired() -> None:
    assert lead_rule(["category.neighbor", "lead.category", "lead.after_return.next"]) == \
        "lead.category"
    assert lead_rule(["category.neighbor"]) == "unknown"
