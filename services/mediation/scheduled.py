"""Supervision (督办) without anyone looking: one leader among the mediation processes emits
case.supervision.v1 when a time limit reaches a level, and recounts the open and overdue
cases for the gauges. Its state is in the database, so a restart or a new leader carries on
where the last one stopped, and each level is emitted once (a unique constraint)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from contracts.enums import Department, LimitSource, NoticeLevel, SlaKind, SupervisionLevel, Tier
from contracts.events import CaseSupervision, CaseSupervisionEvent
from contracts.topics import CASE_SUPERVISION
from kit import liveness
from kit.leader import run_as_leader, sleep_unless
from kit.metrics import (
    CASES_OPEN,
    CASES_OVERDUE,
    RED_UNACCEPTED_OVERDUE,
    SUPERVISION_EVENTS,
    SUPERVISION_NOTICE_ANSWERS,
    SUPERVISION_NOTICES_OPEN,
    SUPERVISION_NOTICES_RAISED,
)
from kit.outbox import add_to_outbox, outbox_row
from kit.runtime import Runtime
from services.mediation import store, supervision_notices
from services.mediation.domain.time_limits import TimeLimit, supervision_tier
from services.mediation.handlers import clocks_of
from services.mediation.store import Case, CaseRow, kit_tables

log = logging.getLogger(__name__)

LOCK = "fengqiao-mediation-supervision"
NONE_LABEL = "none"


def supervision_event_id(case_id: str, routing_round: int, limit: TimeLimit,
                         level: SupervisionLevel) -> str:
    """The same id for the same supervision, so consumers could drop a repeat by its id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:fengqiao:supervision:{case_id}:"
                          f"{routing_round}:{limit.kind.value}:{level.value}"))


def limit_source(case: Case | CaseRow, kind: SlaKind) -> LimitSource:
    """Who set the case's limit of this kind (the policy, when the case does not say)."""
    source = case.accept_by_source if kind is SlaKind.ACCEPTANCE else case.resolve_by_source
    return LimitSource(source) if source else LimitSource.POLICY


class Supervisor:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.interval = runtime.settings.supervision_interval_seconds
        self.batch = runtime.settings.supervision_batch
        self.gauges_every = runtime.settings.case_gauges_interval_seconds
        self._stopping = asyncio.Event()
        self._gauges_at = 0.0
        self._gauge_labels: set[tuple[str, str]] = set()
        self._notice_labels: set[tuple[str, str]] = set()
        # Exported from zero, so the dashboard shows "no notices" rather than no data.
        for on_time in ("true", "false"):
            SUPERVISION_NOTICE_ANSWERS.labels(on_time=on_time)
        for level in NoticeLevel:
            SUPERVISION_NOTICES_RAISED.labels(level=level.value)

    async def run(self) -> None:
        await run_as_leader(self.runtime.engine, LOCK, self._lead, self._stopping)

    def stop(self) -> None:
        self._stopping.set()

    async def _lead(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping.is_set():
                while await self.supervise(datetime.now(UTC)) >= self.batch:
                    pass  # a backlog: take the next batch at once
                while await self.raise_missed_notices(datetime.now(UTC)) >= self.batch:
                    pass
                if loop.time() >= self._gauges_at:
                    await self.count_cases(datetime.now(UTC))
                    self._gauges_at = loop.time() + self.gauges_every
                liveness.beat()
                await sleep_unless(self._stopping, self.interval)
        finally:
            # Only the leader's gauges are true; a former leader stops reporting them.
            self._clear_gauges()

    async def supervise(self, now: datetime) -> int:
        """Emit every supervision level due by `now`; returns how many cases were updated.

        A batch is a few statements, not three per case: the due cases are read, their rows
        locked in case id order, the levels of each computed here (the domain's pure
        clocks), then one conditional UPDATE of them all, one insert of the supervision
        records that are new and one of the outbox rows of those records' events."""
        async with self.runtime.sessions() as session, session.begin():
            updated, emitted = await supervise_batch(session, now, self.batch)
        for level in emitted:
            SUPERVISION_EVENTS.labels(level=level.value).inc()
        if emitted:
            self.runtime.relay.wake()
        return updated

    async def raise_missed_notices(self, now: datetime) -> int:
        """Supervision notices whose answer is overdue rise one level and tell the leader
        (supervision_notices.py)."""
        async with self.runtime.sessions() as session, session.begin():
            raised = await supervision_notices.raise_missed(session, now, self.batch)
        if raised:
            self.runtime.relay.wake()
        return raised

    async def count_cases(self, now: datetime) -> None:
        """Set fq_cases_open, fq_cases_overdue and fq_red_cases_unaccepted_overdue."""
        async with self.runtime.sessions() as session:
            groups, red = await store.case_gauges(session, now)
            notices = await supervision_notices.open_notice_counts(session)
        # Every level at least as (level, none), so "no open notices" is a 0, not no data.
        notice_labels = {(level.value, NONE_LABEL) for level in NoticeLevel}
        for labels in notice_labels:
            SUPERVISION_NOTICES_OPEN.labels(*labels).set(0)
        for level, notice_department, count in notices:
            notice_labels.add((level, notice_department or NONE_LABEL))
            SUPERVISION_NOTICES_OPEN.labels(level, notice_department or NONE_LABEL).set(count)
        for labels in self._notice_labels - notice_labels:
            SUPERVISION_NOTICES_OPEN.labels(*labels).set(0)
        self._notice_labels |= notice_labels
        seen: set[tuple[str, str]] = set()
        for tier, department, open_count, overdue_count in groups:
            labels = (tier or NONE_LABEL, department or NONE_LABEL)
            seen.add(labels)
            CASES_OPEN.labels(*labels).set(open_count)
            CASES_OVERDUE.labels(*labels).set(overdue_count)
        for labels in self._gauge_labels - seen:
            CASES_OPEN.labels(*labels).set(0)
            CASES_OVERDUE.labels(*labels).set(0)
        self._gauge_labels |= seen
        RED_UNACCEPTED_OVERDUE.set(red)

    def _clear_gauges(self) -> None:
        for labels in self._gauge_labels:
            CASES_OPEN.remove(*labels)
            CASES_OVERDUE.remove(*labels)
        self._gauge_labels.clear()
        for labels in self._notice_labels:
            SUPERVISION_NOTICES_OPEN.remove(*labels)
        self._notice_labels.clear()
        # A former leader must not keep reporting red cases: the new leader owns the figure.
        RED_UNACCEPTED_OVERDUE.set(0)
        self._gauges_at = 0.0


async def supervise_batch(session: AsyncSession, now: datetime, batch: int
                          ) -> tuple[int, list[SupervisionLevel]]:
    """One supervisor pass in the caller's transaction: the cases updated, and the levels
    whose events were queued (once each per case, round, limit and level)."""
    cases = await store.due_for_supervision(session, now, batch)  # in case id order
    plans = []
    for case in cases:
        clocks = clocks_of(case)
        due = clocks.due(now)
        after = clocks.after(due)
        plans.append((case, due, {
            "case_id": case.case_id, "version": case.version,
            "acceptance_supervised": _value(after.acceptance_supervised),
            "resolution_supervised": _value(after.resolution_supervised),
            "supervision_due_at": after.next_due_at()}))
    await store.lock_cases(session, [case.case_id for case in cases])
    # Not a transition: the version stays, but the update is conditional on it, so a staff
    # step that committed meanwhile (say, acceptance) wins and we look again next time.
    progressed = await store.update_supervision(session, [row for _, _, row in plans])
    levels = [(case, limit, level, supervision_tier(level, Tier(case.tier or Tier.TOWN)))
              for case, due, _ in plans if case.case_id in progressed
              for limit, level in due]  # clocks run only on routed cases: tier is set
    # Another scheduler may have got there first (failover, SQLite replicas): only the
    # records inserted now are published.
    new = await store.record_supervision_new(session, [{
        "case_id": case.case_id, "routing_round": case.routing_round,
        "sla_kind": limit.kind.value, "level": level.value, "deadline": limit.deadline,
        "tier": to_tier.value, "emitted_at": now} for case, limit, level, to_tier in levels])
    rows, emitted = [], []
    for case, limit, level, to_tier in levels:
        if (case.case_id, case.routing_round, limit.kind.value, level.value) not in new:
            continue
        event = CaseSupervisionEvent.wrap(CaseSupervision(
            case_id=case.case_id, level=level, sla_kind=limit.kind, deadline=limit.deadline,
            tier=to_tier, deadline_source=limit_source(case, limit.kind),
            lead_department=Department(case.lead_department) if case.lead_department
            else None, at=now),
            source="mediation", subject=case.case_id,
            event_id=supervision_event_id(case.case_id, case.routing_round, limit, level))
        rows.append(outbox_row(CASE_SUPERVISION, event))
        emitted.append(level)
    await add_to_outbox(session, kit_tables.outbox, rows)
    return len(progressed), emitted


def _value(level: SupervisionLevel | None) -> str | None:
    return level.value if level else None
