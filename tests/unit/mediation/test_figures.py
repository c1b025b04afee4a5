"""The centres' figures from counts: 化解率, 办结率, 按期办结率, 满意度, 分流率, 调处成功率, 重复率."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.enums import Category, Department, Risk, Tier
from contracts.events import Explanation, RoutingDecision, Sla
from services.mediation.domain.figures import (
    COUNT_NAMES,
    DEFINITIONS,
    FIGURE_NAMES,
    LABELS_ZH,
    CaseCounts,
    figures,
    prior_related_count,
    total_of,
)


def test_figures_from_the_definitions() -> None:
    # One county's year (DOMAIN.md): 6,900 received, 4,685 resolved.
    counts = CaseCounts(received=6900, mediated=5000, resolved=4685, closed=6000,
                        closed_resolved=4600, closed_on_time=5400, rated=1000,
                        satisfaction_sum=4500, satisfied=900, court_received=1000,
                        court_mediated=395, repeats=69)
    f = figures(counts)
    assert f.resolution_rate == pytest.approx(4600 / 6000)
    assert f.closure_rate == pytest.approx(6000 / 6900)
    assert f.on_time_rate == pytest.approx(0.9)
    assert f.satisfaction_mean == pytest.approx(4.5)
    assert f.satisfaction_share_4_5 == pytest.approx(0.9)
    assert f.diversion_rate == pytest.approx(0.395)
    assert f.success_rate == pytest.approx(0.937)
    assert f.repeat_rate == pytest.approx(0.01)


def test_a_rate_without_a_denominator_is_none_not_zero() -> None:
    f = figures(CaseCounts(received=3))
    assert f.closure_rate == 0
    assert (f.resolution_rate, f.on_time_rate, f.satisfaction_mean, f.diversion_rate,
            f.success_rate) == (None, None, None, None, None)


def test_every_figure_and_count_has_a_chinese_label_and_every_figure_a_definition() -> None:
    assert set(LABELS_ZH) == {*COUNT_NAMES, *FIGURE_NAMES}
    assert {name for name in FIGURE_NAMES} == set(DEFINITIONS)


def decision(signals: list[str], fired: list[str]) -> RoutingDecision:
    at = datetime(2026, 11, 23, tzinfo=UTC)
    return RoutingDecision(
        category=Category.NEIGHBOR, category_confidence=1, risk=Risk.YELLOW,
        risk_signals=signals, tier=Tier.VILLAGE,
        lead_department=Department.VILLAGE_MEDIATION, sla=Sla(accept_by=at, resolve_by=at),
        rules_fired=fired, explanation=Explanation(zh="", en=""), rules_version="test")


@pytest.mark.parametrize("signals,fired,count", [
    (["prior_related:2", "threat:扬言"], ["risk.orange.repeat", "risk.yellow.repeat"], 2),
    (["prior_related:1"], ["risk.yellow.repeat"], 1),
    ([], ["risk.yellow.repeat"], 1),
    (["injury:受伤"], ["risk.yellow.injury"], 0),
])
def test_prior_related_cases_are_read_from_the_routing_evidence(
        signals: list[str], fired: list[str], count: int) -> None:
    assert prior_related_count(decision(signals, fired)) == count


def test_the_total_of_groups_is_every_count_summed() -> None:
    # The stats API answers its total row from the groups (one pass over the cases, not two).
    a = CaseCounts(received=3, closed=2, closed_resolved=1, rated=2, satisfaction_sum=9,
                   court_received=1)
    b = CaseCounts(received=5, mediated=4, closed=1, closed_on_time=1, rated=1,
                   satisfaction_sum=4, repeats=2, returned=1, reassigned=1)
    total = total_of([a, b])
    assert total == CaseCounts(received=8, mediated=4, closed=3, closed_resolved=1,
                               closed_on_time=1, rated=3, satisfaction_sum=13,
                               court_received=1, repeats=2, returned=1, reassigned=1)
    assert total_of([]) == CaseCounts()
