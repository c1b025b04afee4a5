"""The figures the centres report (DOMAIN.md), from counts the database aggregates.

Every figure is over the cases *received* in the period asked for (a cohort), each counted
with its state now: a case received in November and closed in December counts as closed in
November's figures once it is closed. Rates are None when their denominator is 0.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from contracts.events import RoutingDecision


@dataclass(frozen=True)
class CaseCounts:
    """What the database counts per group; the names are also the API's and CSV's fields."""

    received: int = 0         # cases received
    mediated: int = 0         # reached in_mediation (调解)
    resolved: int = 0         # reached resolved (调解成功, with an agreement)
    closed: int = 0           # reached closed, or later: visited, rated, archived (办结)
    closed_resolved: int = 0  # closed after a resolution
    closed_on_time: int = 0   # closed no later than the resolution deadline (or no deadline)
    rated: int = 0            # with a satisfaction rating
    satisfaction_sum: int = 0
    satisfied: int = 0        # rated 4 or 5
    court_received: int = 0   # court pre-litigation referrals received (诉前委派)
    court_mediated: int = 0   # ... that reached in_mediation
    repeats: int = 0          # with a prior related case (same phone or id within 90 days)
    returned: int = 0         # returned by a lead department at least once (退回)
    reassigned: int = 0       # assigned by hand at least once (改派 / 人工分派)
    # A matter merged from several reports (合并) counts once in `received` and the others:
    # `reports` counts every report, `merged` those merged into another case.
    reports: int = 0          # reports received, merged ones included
    merged: int = 0           # reports merged into the main case of their matter


@dataclass(frozen=True)
class Figures:
    resolution_rate: float | None         # 化解率
    closure_rate: float | None            # 办结率
    on_time_rate: float | None            # 按期办结率
    satisfaction_mean: float | None       # 满意度 (mean rating)
    satisfaction_share_4_5: float | None  # 满意度 (share of 4–5)
    diversion_rate: float | None          # 分流率
    success_rate: float | None            # 调处成功率
    repeat_rate: float | None             # 重复率
    return_rate: float | None             # 退回率
    reassignment_rate: float | None       # 改派率


def total_of(groups: list[CaseCounts]) -> CaseCounts:
    """The counts of every group together. Each count is a COUNT or a SUM over rows that
    the groups partition, so their sum is what counting all the rows again would give, for
    a second pass over a year of cases less."""
    return CaseCounts(**{name: sum(getattr(g, name) for g in groups) for name in COUNT_NAMES})


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def figures(c: CaseCounts) -> Figures:
    return Figures(
        resolution_rate=_ratio(c.closed_resolved, c.closed),
        closure_rate=_ratio(c.closed, c.received),
        on_time_rate=_ratio(c.closed_on_time, c.closed),
        satisfaction_mean=_ratio(c.satisfaction_sum, c.rated),
        satisfaction_share_4_5=_ratio(c.satisfied, c.rated),
        diversion_rate=_ratio(c.court_mediated, c.court_received),
        success_rate=_ratio(c.resolved, c.mediated),
        repeat_rate=_ratio(c.repeats, c.received),
        return_rate=_ratio(c.returned, c.received),
        reassignment_rate=_ratio(c.reassigned, c.received),
    )


COUNT_NAMES: tuple[str, ...] = tuple(f.name for f in fields(CaseCounts))
FIGURE_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Figures))

# Chinese labels of every figure and count, for the monthly report's columns.
LABELS_ZH: dict[str, str] = {
    "received": "受理量", "mediated": "调解数", "resolved": "调解成功数", "closed": "办结数",
    "closed_resolved": "化解数", "closed_on_time": "按期办结数", "rated": "评价数",
    "satisfaction_sum": "评分合计", "satisfied": "满意数(4–5分)",
    "court_received": "法院委派数", "court_mediated": "法院委派调解数", "repeats": "重复件数",
    "returned": "退回件数", "reassigned": "改派件数", "reports": "来件数(含合并)",
    "merged": "合并件数",
    "resolution_rate": "化解率", "closure_rate": "办结率", "on_time_rate": "按期办结率",
    "satisfaction_mean": "满意度均值", "satisfaction_share_4_5": "满意率(4–5分)",
    "diversion_rate": "分流率", "success_rate": "调处成功率", "repeat_rate": "重复率",
    "return_rate": "退回率", "reassignment_rate": "改派率",
}

# The exact definitions, shown in the OpenAPI description and docs/mediation.md.
DEFINITIONS: dict[str, str] = {
    "resolution_rate": "化解率 = closed_resolved ÷ closed: closed cases that reached `resolved` "
                       "(an agreement), of all closed cases",
    "closure_rate": "办结率 = closed ÷ received: cases that reached `closed` (or visited, rated, "
                    "archived), of all cases received",
    "on_time_rate": "按期办结率 = closed_on_time ÷ closed: closed no later than the case's "
                    "resolution deadline `resolve_by` (of its last routing round; a case "
                    "closed before it had a deadline counts as on time)",
    "satisfaction_mean": "满意度 = mean satisfaction (1–5) of rated cases",
    "satisfaction_share_4_5": "满意度 = rated 4 or 5 ÷ rated",
    "diversion_rate": "分流率 = court_mediated ÷ court_received: court pre-litigation referrals "
                      "(channel `court`) that reached `in_mediation`, of those received",
    "success_rate": "调处成功率 = resolved ÷ mediated: cases that reached `resolved`, of those "
                    "that reached `in_mediation`",
    "repeat_rate": "重复率 = repeats ÷ received: cases whose routing found a prior related case "
                   "(same phone or id number hash within 90 days), of all cases received",
    "return_rate": "退回率 = returned ÷ received: cases a lead department returned (退回) at "
                   "least once, of all cases received; group by `routed_department` or "
                   "`lead_rule` for the router's first choice that was returned",
    "reassignment_rate": "改派率 = reassigned ÷ received: cases a dispatcher assigned by hand "
                         "(改派 or 人工分派 from the queue) at least once, of all cases received",
}

PRIOR_RELATED_SIGNAL = "prior_related:"


def prior_related_count(decision: RoutingDecision) -> int:
    """How many prior related cases the router found, from the evidence it recorded
    (`prior_related:N` among the risk signals; a `*.repeat` rule at least means one)."""
    for signal in decision.risk_signals:
        if signal.startswith(PRIOR_RELATED_SIGNAL):
            try:
                return int(signal.removeprefix(PRIOR_RELATED_SIGNAL))
            except ValueError:
                break
    return 1 if any(rule.endswith(".repeat") for rule in decision.rules_fired) else 0
