"""The supervisor's pass over many overdue cases at once (a backlog after an outage): one
batch of 300 cases of every tier, in every status a clock runs in (and some it does not),
with limits passed to different levels, some levels already emitted and some records
already written by another scheduler, gives exactly the supervision records, events, case
columns and metrics worked out here by hand from the rules (warning at 80 % of a limit,
level 1 at the deadline, level 2 at twice the limit to the tier above, each once per case,
round, limit and level). On PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kit import migrate
from kit.db import create_engine, session_factory
from kit.metrics import SUPERVISION_EVENTS
from kit.settings import Settings
from services.mediation import store
from services.mediation.scheduled import Supervisor
from services.mediation.store import CASES, SV, NewCase, kit_tables, metadata
from tests.infra import create_pg_database, drop_pg_database

pytestmark = [pytest.mark.integration, pytest.mark.both_backends]

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
LEVELS = ("warning", "level_1", "level_2")
SHARE = {"warning": 0.8, "level_1": 1.0, "level_2": 2.0}
ABOVE = {"village": "town", "town": "county", "county": "county"}
# Which limits run in which status (docs/mediation.md, "Time limits and supervision").
RUNS = {"acceptance": {"routed"},
        "resolution": {"routed", "accepted", "in_mediation", "returned", "awaiting_dispatch"}}
STATUSES = ["routed", "routed", "accepted", "in_mediation", "returned", "awaiting_dispatch",
            "resolved"]
# How far through a limit the case is at NOW: 0.5 (nothing due), 0.9 (warning), 1.5 (and
# level 1), 3 (every level).
FRACTIONS = [0.5, 0.9, 1.5, 3.0]


@dataclass
class Limit:
    kind: str
    start: datetime
    deadline: datetime
    already: str | None  # the last level emitted before the pass

    def due_at(self, level: str) -> datetime:
        return self.start + (self.deadline - self.start) * SHARE[level]

    def pending(self) -> list[str]:
        return list(LEVELS[LEVELS.index(self.already) + 1:] if self.already else LEVELS)

    def due(self) -> list[str]:
        return [level for level in self.pending() if self.due_at(level) <= NOW]


@dataclass
class Spec:
    case_id: str
    status: str
    tier: str
    lead: str | None
    routing_round: int
    accept_source: str | None
    resolve_source: str | None
    limits: list[Limit]  # the running ones
    accept_by: datetime
    resolve_by: datetime
    limits_from: datetime
    accept_from: datetime | None
    acceptance_supervised: str | None
    resolution_supervised: str | None
    recorded_elsewhere: set[tuple[str, str]]  # (kind, level) another scheduler wrote

    def due(self) -> list[tuple[Limit, str]]:
        return [(limit, level) for limit in self.limits for level in limit.due()]

    def after(self, kind: str) -> str | None:
        """The last level emitted of `kind` once the pass is done."""
        before = self.acceptance_supervised if kind == "acceptance" \
            else self.resolution_supervised
        levels = [level for limit, level in self.due() if limit.kind == kind]
        return levels[-1] if levels else before

    def next_due(self) -> datetime | None:
        times = []
        for limit in self.limits:
            left = [level for level in limit.pending() if level not in limit.due()]
            if left:
                times.append(limit.due_at(left[0]))
        return min(times, default=None)


def build(n: int, prefix: str) -> list[Spec]:
    """n cases of mixed tiers, statuses, limit lengths and ages, made deterministically."""
    specs = []
    for i in range(n):
        status = STATUSES[i % len(STATUSES)]
        tier = ("village", "town", "county")[i % 3]
        accept_len = timedelta(hours=(24, 2, 48)[i % 3])
        resolve_len = timedelta(days=(7, 15, 30, 3)[i % 4])
        accept_f = FRACTIONS[(i // 3) % 4]
        resolve_f = FRACTIONS[(i // 5) % 4]
        limits_from = NOW - resolve_len * resolve_f
        # After a correction (every other case) acceptance starts again, later.
        accept_from = NOW - accept_len * accept_f if i % 2 == 0 else None
        accept_start = accept_from or limits_from
        accept_by = accept_start + accept_len
        resolve_by = limits_from + resolve_len
        # Some levels already emitted before this pass.
        acc_already = (None, "warning", None, "level_1")[i % 4] if status == "routed" else None
        res_already = (None, None, "warning")[i % 3]
        limits = []
        if status in RUNS["acceptance"]:
            limits.append(Limit("acceptance", accept_start, accept_by, acc_already))
        if status in RUNS["resolution"]:
            limits.append(Limit("resolution", limits_from, resolve_by, res_already))
        spec = Spec(
            case_id=f"{prefix}{i:04d}", status=status, tier=tier,
            lead=None if status == "awaiting_dispatch" else
            ("village_mediation", "judicial_office", "police_station")[i % 3],
            routing_round=1 + i % 2,
            accept_source=(None, "policy", "hotline")[i % 3],
            resolve_source=(None, "hotline", "extension", "policy")[i % 4],
            limits=limits, accept_by=accept_by, resolve_by=resolve_by,
            limits_from=limits_from, accept_from=accept_from,
            acceptance_supervised=acc_already, resolution_supervised=res_already,
            recorded_elsewhere=set())
        # Every eleventh case: another scheduler already wrote its first due level's record.
        if i % 11 == 0 and spec.due():
            limit, level = spec.due()[0]
            spec.recorded_elsewhere.add((limit.kind, level))
        specs.append(spec)
    return specs


def case_row(spec: Spec) -> dict[str, Any]:
    return NewCase(
        case_id=spec.case_id, channel="hotline_12345", external_id=f"X-{spec.case_id}",
        status=spec.status, version=3, received_at=spec.limits_from, tier=spec.tier,
        lead_department=spec.lead, routing_round=spec.routing_round,
        limits_from=spec.limits_from, accept_from=spec.accept_from, accept_by=spec.accept_by,
        resolve_by=spec.resolve_by, accept_by_source=spec.accept_source,
        resolve_by_source=spec.resolve_source,
        acceptance_supervised=spec.acceptance_supervised,
        resolution_supervised=spec.resolution_supervised,
        # Due now, or (a resolved case) once due, before its clocks stopped.
        supervision_due_at=NOW - timedelta(minutes=1), updated_at=NOW).row()


@pytest.fixture
async def sessions(database_url: str, run_dir: Path
                   ) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Mediation's tables alone in a fresh database of the session's kind."""
    pg_name = None
    if database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{run_dir / f'supervision-{uuid.uuid4().hex[:8]}.db'}"
    else:
        url, pg_name = await create_pg_database()
    engine = create_engine(url)
    await migrate.upgrade(engine, "mediation", metadata)
    yield session_factory(engine)
    await engine.dispose()
    if pg_name:
        await drop_pg_database(pg_name)


def supervisor(sessions: async_sessionmaker[AsyncSession]) -> Supervisor:
    runtime = SimpleNamespace(settings=Settings(service="mediation"), sessions=sessions,
                              relay=SimpleNamespace(wake=lambda: None), engine=None)
    return Supervisor(runtime)  # type: ignore[arg-type]


def events_total() -> Counter[str]:
    return Counter({level: SUPERVISION_EVENTS.labels(level=level)._value.get()
                    for level in LEVELS})


async def test_a_batch_of_overdue_cases_gets_exactly_its_records_and_events(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    specs = build(300, "B")
    not_due = build(20, "Z")  # their time has not come: the pass leaves them alone
    async with sessions() as session, session.begin():
        rows = [case_row(s) for s in specs] + [
            {**case_row(s), "supervision_due_at": NOW + timedelta(hours=1)} for s in not_due]
        await session.execute(insert(CASES), rows)
        elsewhere = [{"case_id": s.case_id, "routing_round": s.routing_round,
                      "sla_kind": kind, "level": level,
                      "deadline": next(lim.deadline for lim in s.limits if lim.kind == kind),
                      "tier": ABOVE[s.tier] if level == "level_2" else s.tier,
                      "emitted_at": NOW - timedelta(minutes=2)}
                     for s in specs for kind, level in sorted(s.recorded_elsewhere)]
        await session.execute(insert(SupervisionRecord), elsewhere)
    assert len(elsewhere) >= 10
    before = events_total()

    updated = await supervisor(sessions).supervise(NOW)

    assert updated == len(specs)
    # The events: one per level due and not recorded elsewhere, nothing else.
    expected_events = {}
    for s in specs:
        for limit, level in s.due():
            if (limit.kind, level) in s.recorded_elsewhere:
                continue
            expected_events[(s.case_id, limit.kind, level)] = {
                "case_id": s.case_id, "level": level, "sla_kind": limit.kind,
                "deadline": limit.deadline,
                "deadline_source": (s.accept_source if limit.kind == "acceptance"
                                    else s.resolve_source) or "policy",
                "tier": ABOVE[s.tier] if level == "level_2" else s.tier,
                "lead_department": s.lead, "at": NOW}
    assert len(expected_events) > 400  # a real backlog, several levels for many cases
    async with sessions() as session:
        outbox = (await session.execute(select(kit_tables.outbox))).mappings().all()
        records = (await session.execute(select(SV.case_id, SV.routing_round, SV.sla_kind,
                                                SV.level, SV.deadline, SV.tier))).all()
        cases = {r.case_id: r for r in (await session.execute(select(
            CASES.c.case_id, CASES.c.version, CASES.c.acceptance_supervised,
            CASES.c.resolution_supervised, CASES.c.supervision_due_at))).all()}
    got = {}
    for row in outbox:
        assert row["topic"] == "case.supervision.v1"
        event = orjson.loads(row["value"])
        data = event["data"]
        key = (data["case_id"], data["sla_kind"], data["level"])
        assert key not in got, f"{key} published twice"
        assert event["subject"] == row["key"] == data["case_id"]
        got[key] = {**{k: data.get(k) for k in (
            "case_id", "level", "sla_kind", "deadline_source", "tier", "lead_department")},
            "deadline": datetime.fromisoformat(data["deadline"]),
            "at": datetime.fromisoformat(data["at"])}
        assert data.get("notice") is None and data.get("owner") is None
    assert got == expected_events
    # Events of one case in the order of its levels, cases in case id order.
    order = [(orjson.loads(r["value"])["data"]["case_id"]) for r in outbox]
    assert order == sorted(order)
    # The event id is derived from case, round, limit and level (the same id for a repeat).
    ids = [orjson.loads(r["value"])["id"] for r in outbox]
    assert len(set(ids)) == len(ids)

    # The records: those written elsewhere, and one per event.
    expected_records = {(s.case_id, s.routing_round, limit.kind, level, limit.deadline,
                         ABOVE[s.tier] if level == "level_2" else s.tier)
                        for s in specs for limit, level in s.due()}
    assert Counter(tuple(r) for r in records) == Counter(expected_records)

    # The cases: the last level per limit, and when to look again; the version unchanged.
    for s in specs:
        case = cases[s.case_id]
        assert case.version == 3
        assert (case.acceptance_supervised, case.resolution_supervised) == (
            s.after("acceptance"), s.after("resolution")), s.case_id
        assert case.supervision_due_at == s.next_due(), s.case_id
    for s in not_due:
        assert cases[s.case_id].supervision_due_at == NOW + timedelta(hours=1)
        assert (cases[s.case_id].acceptance_supervised, cases[s.case_id].resolution_supervised
                ) == (s.acceptance_supervised, s.resolution_supervised)

    # The metric counts the events published, by level.
    assert events_total() - before == Counter(level for _, _, level in expected_events)

    # A second pass at the same time finds nothing left to do.
    assert await supervisor(sessions).supervise(NOW) == 0
    async with sessions() as session:
        assert len((await session.execute(select(kit_tables.outbox.c.id))).all()) == len(outbox)

    # The next times written are found by the due scan when they come (on SQLite the scan
    # compares the stored text: the batch must store times as every other write does).
    next_due = {s.case_id: t for s in specs if (t := s.next_due()) is not None}
    next_due |= {s.case_id: NOW + timedelta(hours=1) for s in not_due}
    later = sorted(next_due.values())
    for at in (later[0], later[len(later) // 2], later[-1]):
        async with sessions() as session:
            found = {r.case_id for r in await store.due_for_supervision(session, at, 1000)}
        assert found == {case_id for case_id, t in next_due.items() if t <= at}
    # And a pass once every limit is far behind emits every level left, once.
    assert await supervisor(sessions).supervise(later[-1] + timedelta(days=90)) == len(
        next_due)
    async with sessions() as session:
        records = (await session.execute(select(SV.case_id, SV.sla_kind, SV.level))).all()
    # (Levels emitted before the first pass have no record in this database.)
    assert Counter(tuple(r) for r in records) == Counter(
        (s.case_id, limit.kind, level) for s in specs + not_due for limit in s.limits
        for level in limit.pending())


async def test_two_supervisors_at_once_emit_each_level_once(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    """Two passes over the same batch at once (a failover, SQLite replicas): the second
    waits for the first's locks (PostgreSQL) or its write (SQLite), finds every record
    there, and publishes nothing more."""
    specs = build(300, "R")
    async with sessions() as session, session.begin():
        await session.execute(insert(CASES), [case_row(s) for s in specs])
    first, second = supervisor(sessions), supervisor(sessions)
    updated = await asyncio.gather(first.supervise(NOW), second.supervise(NOW))
    assert max(updated) == len(specs)
    async with sessions() as session:
        outbox = (await session.execute(select(kit_tables.outbox.c.value))).scalars().all()
        records = (await session.execute(select(SV.case_id, SV.sla_kind, SV.level))).all()
    published = Counter((e["data"]["case_id"], e["data"]["sla_kind"], e["data"]["level"])
                        for e in map(orjson.loads, outbox))
    expected = Counter((s.case_id, limit.kind, level) for s in specs
                       for limit, level in s.due())
    assert published == expected
    assert Counter(tuple(r) for r in records) == expected


async def test_a_case_changed_since_it_was_read_keeps_its_values(
        sessions: async_sessionmaker[AsyncSession]) -> None:
    """The set-based update is conditional on each case's version, as update_case is: a staff
    step that committed after the supervisor read the case wins."""
    specs = build(4, "V")
    async with sessions() as session, session.begin():
        await session.execute(insert(CASES), [case_row(s) for s in specs])
    rows = [{"case_id": s.case_id, "version": 3 if n % 2 else 2,  # even ones: stale
             "acceptance_supervised": "level_2", "resolution_supervised": "level_2",
             "supervision_due_at": None} for n, s in enumerate(specs)]
    async with sessions() as session, session.begin():
        await store.lock_cases(session, [s.case_id for s in specs])
        updated = await store.update_supervision(session, rows)
    assert updated == {specs[1].case_id, specs[3].case_id}
    async with sessions() as session:
        got = {r.case_id: r for r in (await session.execute(select(
            CASES.c.case_id, CASES.c.resolution_supervised, CASES.c.supervision_due_at))).all()}
    assert got[specs[1].case_id].resolution_supervised == "level_2"
    assert got[specs[0].case_id].resolution_supervised == specs[0].resolution_supervised
    assert got[specs[0].case_id].supervision_due_at == NOW - timedelta(minutes=1)


SupervisionRecord = store.SupervisionRecord.__table__  # type: ignore[attr-defined]
