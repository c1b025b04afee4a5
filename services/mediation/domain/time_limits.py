"""Time limits (限时办结) and supervision (督办): which clocks run in which status, when each
supervision level falls due, and when a case is overdue.

A limit runs from its start (receipt, or the escalation for a case routed again) to its
deadline. Supervision comes at 80% of the limit (warning), at the deadline (level 1) and at
twice the limit (level 2, to the tier above), each once per limit and routing round.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from contracts.enums import LimitSource, SlaKind, Status, SupervisionLevel, Tier
from contracts.events import Sla

S = Status
L = SupervisionLevel

WARNING_SHARE = 0.8
LEVEL_2_MULTIPLE = 2.0
LEVELS: tuple[SupervisionLevel, ...] = (L.WARNING, L.LEVEL_1, L.LEVEL_2)
_SHARE_OF_LIMIT = {L.WARNING: WARNING_SHARE, L.LEVEL_1: 1.0, L.LEVEL_2: LEVEL_2_MULTIPLE}

# Acceptance (受理) stops counting once accepted; resolution once resolved, failed,
# withdrawn or closed. A case waiting for the router (escalated) has no running clock:
# its new round brings new limits.
RUNS_IN: dict[SlaKind, frozenset[Status]] = {
    SlaKind.ACCEPTANCE: frozenset({S.ROUTED}),
    # The citizen's clock does not stop while a returned case waits for its new department.
    SlaKind.RESOLUTION: frozenset({S.ROUTED, S.ACCEPTED, S.IN_MEDIATION, S.RETURNED,
                                   S.AWAITING_DISPATCH}),
}


@dataclass(frozen=True)
class TimeLimit:
    kind: SlaKind
    start: datetime
    deadline: datetime

    @property
    def length(self) -> timedelta:
        return max(self.deadline - self.start, timedelta(0))

    def due_at(self, level: SupervisionLevel) -> datetime:
        """When `level` falls due; a deadline before its start makes every level due at once."""
        return self.start + self.length * _SHARE_OF_LIMIT[level]


@dataclass(frozen=True)
class LimitOverrides:
    """Fixed limit lengths that replace the routing decision's (drills and tests use seconds)."""

    acceptance: timedelta | None = None
    resolution: timedelta | None = None

    def apply(self, start: datetime, accept_by: datetime, resolve_by: datetime,
              sla: Sla | None = None) -> tuple[datetime, datetime]:
        """The limits with the overrides in place of the policy's; a limit a 12345 order
        set (`sla` says whose each is) is the hotline's and stays."""
        hotline = LimitSource.HOTLINE
        keep_accept = sla is not None and sla.accept_by_source is hotline
        keep_resolve = sla is not None and sla.resolve_by_source is hotline
        return (start + self.acceptance if self.acceptance is not None and not keep_accept
                else accept_by,
                start + self.resolution if self.resolution is not None and not keep_resolve
                else resolve_by)


@dataclass(frozen=True)
class CaseClocks:
    """A case's time limits in its current routing round, and the supervision emitted so far
    (the last level of each kind; levels are emitted in order)."""

    status: Status
    start: datetime | None
    accept_by: datetime | None
    resolve_by: datetime | None
    acceptance_supervised: SupervisionLevel | None = None
    resolution_supervised: SupervisionLevel | None = None
    # After a return or an assignment by hand the acceptance limit starts again for the new
    # department, while the overall limit keeps counting from `start`.
    acceptance_start: datetime | None = None

    def running(self) -> list[TimeLimit]:
        """The limits counting now."""
        if self.start is None:
            return []
        limits = []
        for kind, deadline in ((SlaKind.ACCEPTANCE, self.accept_by),
                               (SlaKind.RESOLUTION, self.resolve_by)):
            if deadline is not None and self.status in RUNS_IN[kind]:
                start = (self.acceptance_start or self.start) if kind is SlaKind.ACCEPTANCE \
                    else self.start
                limits.append(TimeLimit(kind, start, deadline))
        return limits

    def last_supervised(self, kind: SlaKind) -> SupervisionLevel | None:
        if kind is SlaKind.ACCEPTANCE:
            return self.acceptance_supervised
        return self.resolution_supervised

    def _pending(self, kind: SlaKind) -> tuple[SupervisionLevel, ...]:
        last = self.last_supervised(kind)
        return LEVELS if last is None else LEVELS[LEVELS.index(last) + 1:]

    def due(self, now: datetime) -> list[tuple[TimeLimit, SupervisionLevel]]:
        """Every level due by `now` and not yet emitted, in order. Levels passed while no
        scheduler ran are all emitted, so each case's record is complete."""
        return [(limit, level) for limit in self.running() for level in self._pending(limit.kind)
                if limit.due_at(level) <= now]

    def after(self, emitted: list[tuple[TimeLimit, SupervisionLevel]]) -> CaseClocks:
        """These clocks once `emitted` has been emitted."""
        clocks = self
        for limit, level in emitted:
            if limit.kind is SlaKind.ACCEPTANCE:
                clocks = replace(clocks, acceptance_supervised=level)
            else:
                clocks = replace(clocks, resolution_supervised=level)
        return clocks

    def next_due_at(self) -> datetime | None:
        """When the scheduler must look at this case next; None when nothing is left to do."""
        times = [limit.due_at(pending[0]) for limit in self.running()
                 if (pending := self._pending(limit.kind))]
        return min(times, default=None)


def supervision_tier(level: SupervisionLevel, tier: Tier) -> Tier:
    """Level 2 goes to the tier above the case's; the others to the case's own tier."""
    return tier.above() if level is L.LEVEL_2 else tier


def is_overdue(status: Status, accept_by: datetime | None, resolve_by: datetime | None,
               now: datetime) -> bool:
    """A running limit is past its deadline."""
    return any(deadline is not None and status in RUNS_IN[kind] and deadline < now
               for kind, deadline in ((SlaKind.ACCEPTANCE, accept_by),
                                      (SlaKind.RESOLUTION, resolve_by)))
