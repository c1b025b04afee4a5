"""Time limits and supervision: 80% warning, level 1 when overdue, level 2 at twice the
limit to the tier above; each once; clocks stop when their step is done."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.enums import SlaKind, Status, SupervisionLevel, Tier
from services.mediation.domain.time_limits import (
    RUNS_IN,
    CaseClocks,
    LimitOverrides,
    TimeLimit,
    is_overdue,
    supervision_tier,
)

S = Status
L = SupervisionLevel
T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
H = timedelta(hours=1)


def clocks(status: Status = S.ROUTED, **progress: SupervisionLevel) -> CaseClocks:
    # Red case: accept within 2 hours; town: resolve within 15 days.
    return CaseClocks(status, T0, T0 + 2 * H, T0 + timedelta(days=15), **progress)


def test_levels_fall_due_at_80_percent_the_deadline_and_twice_the_limit() -> None:
    limit = TimeLimit(SlaKind.ACCEPTANCE, T0, T0 + 10 * H)
    assert limit.due_at(L.WARNING) == T0 + 8 * H
    assert limit.due_at(L.LEVEL_1) == T0 + 10 * H
    assert limit.due_at(L.LEVEL_2) == T0 + 20 * H


def test_a_deadline_before_its_start_makes_every_level_due_at_once() -> None:
    limit = TimeLimit(SlaKind.RESOLUTION, T0, T0 - H)
    assert {limit.due_at(level) for level in L} == {T0}


@pytest.mark.parametrize("status,running", [
    (S.REPORTED, set()),
    (S.ROUTED, {SlaKind.ACCEPTANCE, SlaKind.RESOLUTION}),
    (S.ACCEPTED, {SlaKind.RESOLUTION}),
    (S.IN_MEDIATION, {SlaKind.RESOLUTION}),
    (S.RESOLVED, set()), (S.FAILED, set()), (S.ESCALATED, set()), (S.WITHDRAWN, set()),
    (S.CLOSED, set()), (S.ARCHIVED, set()),
])
def test_acceptance_stops_once_accepted_and_resolution_once_resolved_or_failed(
        status: Status, running: set[SlaKind]) -> None:
    assert {limit.kind for limit in clocks(status).running()} == running


def test_nothing_is_due_before_the_warning() -> None:
    c = clocks()
    assert c.due(T0 + 95 * timedelta(minutes=1)) == []
    assert c.next_due_at() == T0 + 96 * timedelta(minutes=1)


def test_the_warning_comes_once_then_the_next_level_is_awaited() -> None:
    c = clocks()
    now = T0 + 100 * timedelta(minutes=1)
    due = c.due(now)
    assert [(limit.kind, level) for limit, level in due] == [(SlaKind.ACCEPTANCE, L.WARNING)]
    after = c.after(due)
    assert after.acceptance_supervised is L.WARNING
    assert after.due(now) == []
    assert after.next_due_at() == T0 + 2 * H


def test_levels_passed_while_no_scheduler_ran_all_come_in_order() -> None:
    due = clocks().due(T0 + 5 * H)
    assert [(limit.kind, level) for limit, level in due] == [
        (SlaKind.ACCEPTANCE, L.WARNING), (SlaKind.ACCEPTANCE, L.LEVEL_1),
        (SlaKind.ACCEPTANCE, L.LEVEL_2)]


def test_after_level_2_the_acceptance_clock_needs_nothing_more() -> None:
    c = clocks(acceptance_supervised=L.LEVEL_2)
    assert c.due(T0 + timedelta(days=1)) == []
    assert c.next_due_at() == T0 + timedelta(days=12)  # resolution warning: 80% of 15 days


def test_an_accepted_case_is_only_watched_for_resolution() -> None:
    c = clocks(S.ACCEPTED)
    assert c.next_due_at() == T0 + timedelta(days=12)
    assert [level for _, level in c.due(T0 + timedelta(days=31))] == [
        L.WARNING, L.LEVEL_1, L.LEVEL_2]


def test_a_resolved_case_needs_no_more_supervision() -> None:
    assert clocks(S.RESOLVED).next_due_at() is None
    assert clocks(S.RESOLVED).due(T0 + timedelta(days=100)) == []


def test_level_2_goes_to_the_tier_above() -> None:
    assert supervision_tier(L.LEVEL_2, Tier.VILLAGE) is Tier.TOWN
    assert supervision_tier(L.LEVEL_2, Tier.COUNTY) is Tier.COUNTY
    assert supervision_tier(L.LEVEL_1, Tier.VILLAGE) is Tier.VILLAGE
    assert supervision_tier(L.WARNING, Tier.TOWN) is Tier.TOWN


@pytest.mark.parametrize("status,accept_by,resolve_by,overdue", [
    (S.ROUTED, T0 - H, T0 + H, True),
    (S.ACCEPTED, T0 - H, T0 + H, False),   # accepted late, but acceptance is done
    (S.ACCEPTED, T0 + H, T0 - H, True),
    (S.IN_MEDIATION, None, T0 - H, True),
    (S.FAILED, T0 - H, T0 - H, False),
    (S.CLOSED, T0 - H, T0 - H, False),
    (S.ROUTED, None, None, False),
])
def test_overdue_means_a_running_limit_is_past_its_deadline(
        status: Status, accept_by: datetime | None, resolve_by: datetime | None,
        overdue: bool) -> None:
    assert is_overdue(status, accept_by, resolve_by, T0) is overdue


def test_overrides_replace_the_decision_limits_counted_from_the_start() -> None:
    overrides = LimitOverrides(acceptance=timedelta(seconds=2))
    decided = (T0 + 24 * H, T0 + timedelta(days=7))
    assert overrides.apply(T0, *decided) == (T0 + timedelta(seconds=2), decided[1])
    assert LimitOverrides().apply(T0, *decided) == decided


def test_the_clocks_run_only_in_open_statuses() -> None:
    assert RUNS_IN[SlaKind.ACCEPTANCE] <= RUNS_IN[SlaKind.RESOLUTION]
