"""A lost index fails CI: the queries that must stay flat as years of cases pile up
(bench/data_scale.py, docs/performance.md) are run against a migrated PostgreSQL database
with a few thousand rows, captured as the driver sends them, and EXPLAINed with sequential
scans priced out (`enable_seqscan = off`): the planner then takes a sequential scan only
where no index can answer, and where a particular index is the one that keeps a query flat,
the plan must use it.

PostgreSQL only (SQLite's planner is another matter, and the embedded default is for small
centres); skipped only where no server answers outside CI, as the other PostgreSQL tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql import ColumnElement

from contracts.api_mediation import PERIODS, StatsDimension
from contracts.enums import Channel
from contracts.events import CaseReported, PartyRef
from kit import migrate
from kit.auth import Principal
from kit.db import create_engine
from services.intake import store as intake_store
from services.intake.handlers import find_report
from services.mediation import store as mediation_store
from services.mediation.store import C, Case, CaseHistory, H, SupervisionRecord
from services.notify import store as notify_store
from services.notify.store import deliveries
from services.router import store as router_store
from services.router.handlers import PriorCases
from tests.infra import create_pg_database, drop_pg_database

pytestmark = pytest.mark.integration

CASES = 20_000
NOW = datetime(2026, 12, 7, 8, tzinfo=UTC)
BIG_TABLES = {"mediation_cases", "mediation_case_history", "mediation_supervision",
              "intake_cases", "router_identity_hashes", "notify_deliveries"}

def seed_statements(cases: int) -> list[str]:
    """`cases` cases and their rows in each table, skewed as real ones are (a status most
    cases reach, a rare category, many villages), written by the database itself: seconds
    for a few thousand, not a bulk load (bench/plans_at_scale.py uses it for a million)."""
    return [
        f"""INSERT INTO mediation_cases (case_id, channel, external_id, status, version,
            received_at, text, category, risk, tier, lead_department, cooperating_departments,
            jurisdiction_code, routing_round, prior_related, returns, reassignments,
            review_flagged, accept_by, resolve_by, supervision_due_at, updated_at)
          SELECT 'P' || lpad(g::text, 8, '0'),
            (ARRAY['hotline_12345','hotline_12345','grid','walk_in','police','court'])[1 + g % 6],
            'E' || g,
            CASE WHEN g % 50 = 0 THEN 'awaiting_dispatch' WHEN g % 10 < 7 THEN 'archived'
                 ELSE (ARRAY['routed','accepted','in_mediation'])[1 + g % 3] END,
            3, TIMESTAMPTZ '2026-12-07 08:00+00' - (g::bigint * 6037 % (4 * 365 * 86400)) * INTERVAL '1 s',
            '邻居纠纷' || g,
            CASE WHEN g % 100 = 0 THEN 'medical' ELSE
              (ARRAY['neighbor','labor','marriage_family','property_management'])[1 + g % 4] END,
            CASE WHEN g % 40 = 3 THEN 'red' ELSE
              (ARRAY['blue','blue','yellow','orange'])[1 + g % 4] END,
            (ARRAY['village','town','town','county'])[1 + g % 4],
            CASE WHEN g % 100 = 0 THEN 'health' ELSE
              (ARRAY['village_mediation','hr_social_security','womens_federation'])[1 + g % 3] END,
            (CASE WHEN g % 7 = 0 THEN '["civil_affairs"]' ELSE '[]' END)::json,
            '330102' || lpad((1 + g % 12)::text, 3, '0') || lpad((1 + g / 12 % 15)::text, 3, '0'),
            1, 0, 0, 0, g % 500 = 0,
            TIMESTAMPTZ '2026-12-07 08:00+00' - (g % 90) * INTERVAL '1 day',
            TIMESTAMPTZ '2026-12-07 08:00+00' + (30 - g % 90) * INTERVAL '1 day',
            CASE WHEN g % 10 >= 7 THEN TIMESTAMPTZ '2026-12-07 08:00+00' END,
            TIMESTAMPTZ '2026-12-07 08:00+00'
          FROM generate_series(1, {cases}) g""",
        """INSERT INTO mediation_case_history (case_id, version, from_status, to_status, actor,
            at, data)
          SELECT case_id, v, NULL, 'routed', 'system', received_at + v * INTERVAL '1 hour', '{}'::json
          FROM mediation_cases, generate_series(1, 3) v""",
        """INSERT INTO mediation_supervision (case_id, routing_round, sla_kind, level, deadline,
            tier, emitted_at)
          SELECT case_id, 1, 'resolution', 'level_1', resolve_by, 'county', resolve_by
          FROM mediation_cases WHERE status <> 'archived'""",
        """INSERT INTO intake_cases (case_id, channel, external_id, fingerprint, received_at,
            created_at, native)
          SELECT case_id, channel, external_id, md5(case_id), received_at, received_at, '{}'::json
          FROM mediation_cases""",
        """INSERT INTO router_identity_hashes (identity_hash, case_id, received_at)
          SELECT md5((substr(case_id, 2)::int / 3)::text), case_id, received_at
          FROM mediation_cases""",
        """INSERT INTO notify_deliveries (target, subscription_id, event_id, case_id, kind, body,
            status, attempts, next_attempt_at, created_at)
          SELECT 'webhook', 'sub' || (substr(case_id, 2)::int % 8), md5(case_id), case_id,
            'case.routed', '\\x7b7d'::bytea, CASE WHEN substr(case_id, 2)::int % 200 = 0 THEN 'dead'
            ELSE 'succeeded' END, 1, 0, received_at
          FROM mediation_cases""",
        "ANALYZE",
    ]



@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    if database_url.startswith("sqlite"):
        pytest.skip("no PostgreSQL server here (query plans are checked on PostgreSQL)")
    url, name = await create_pg_database()
    engine = create_engine(url)
    try:
        for component, metadata in (("mediation", mediation_store.metadata),
                                     ("intake", intake_store.metadata),
                                     ("router", router_store.metadata),
                                     ("notify", notify_store.metadata)):
            await migrate.upgrade(engine, component, metadata)
        async with engine.begin() as conn:
            for statement in seed_statements(CASES):
                await conn.exec_driver_sql(statement)
            # The planner's statistics now, not whenever autovacuum gets to it: without
            # them a plan follows the moment the test runs at, not the indexes.
            await conn.exec_driver_sql("ANALYZE")
        # And the visibility map, as autovacuum keeps it (an index-only scan reads the
        # table for pages not marked all-visible, and the planner prices that in).
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("VACUUM mediation_cases")
        yield engine
    finally:
        await engine.dispose()
        await drop_pg_database(name)


async def plans_of(engine: AsyncEngine, run: Callable[[AsyncSession], Awaitable[Any]],
                   explain: str = "EXPLAIN (FORMAT JSON) ", seqscan: bool = False
                   ) -> list[dict[str, Any]]:
    """Run `run` as the services do, capture each statement as the driver receives it, and
    return the plan of each (with sequential scans priced out unless `seqscan`)."""
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with AsyncSession(engine) as session:
            await run(session)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    assert captured, "nothing was queried"
    plans = []
    async with engine.connect() as conn:
        if not seqscan:
            await conn.execute(text("SET enable_seqscan = off"))
        for statement, parameters in captured:
            rows = (await conn.exec_driver_sql(explain + statement, parameters)).all()
            raw = rows[0][0]
            plans.append((json.loads(raw) if isinstance(raw, str) else raw)[0])
    return plans


def scans(plan: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(node type, table, index) of every scan in the plan."""
    out = []
    if "Relation Name" in plan:
        out.append((plan["Node Type"], plan["Relation Name"], plan.get("Index Name", "")))
    elif plan["Node Type"] == "Bitmap Index Scan":
        out.append((plan["Node Type"], "", plan["Index Name"]))
    for child in plan.get("Plans", []):
        out += scans(child)
    return out


def assert_indexed(plans: list[dict[str, Any]], uses: str | tuple[str, ...] | None = None
                   ) -> None:
    """No sequential scan of a big table, and `uses` (or one of them) among the indexes."""
    found = [s for plan in plans for s in scans(plan["Plan"])]
    seq = [s for s in found if s[0] == "Seq Scan" and s[1] in BIG_TABLES]
    assert not seq, f"sequential scan of a big table: {seq} (all scans: {found})"
    if uses:
        either = (uses,) if isinstance(uses, str) else uses
        assert any(index in either for _, _, index in found), f"{uses} not used: {found}"


def case_list(*where: ColumnElement[bool]) -> Callable[[AsyncSession], Awaitable[Any]]:
    """The case list's query as GET /v1/cases builds it: filters, newest first, a page."""
    async def run(session: AsyncSession) -> Any:
        return (await session.execute(
            select(Case).where(*where).order_by(C.received_at.desc(), C.case_id.desc())
            .limit(51))).all()
    return run


# (filter, the index that keeps it flat, if one in particular does)
LIST_FILTERS: list[tuple[str, list[ColumnElement[bool]], str | tuple[str, ...] | None]] = [
    ("newest", [], "ix_mediation_cases_order"),
    # Most cases: the order's own index, skipping the few others, is as flat.
    ("status common", [C.status == "archived"], "ix_mediation_cases_order"),
    ("status rare", [C.status == "awaiting_dispatch"], "ix_mediation_cases_status_order"),
    ("category", [C.category == "medical"], "ix_mediation_cases_category_order"),
    ("risk", [C.risk == "red"], "ix_mediation_cases_risk_order"),
    # A quarter of the cases: the order's index, filtered, or the tier's own, both flat.
    ("tier", [C.tier == "county"], None),
    ("lead department", [C.lead_department == "health"],
     "ix_mediation_cases_lead_department_order"),
    ("channel", [C.channel == "court"], None),
    ("department (lead or cooperating)", [mediation_store.involves_department("health")],
     None),
    ("jurisdiction prefix", [mediation_store.within_jurisdictions({"330102005007"})],
     "ix_mediation_cases_jurisdiction_code"),
    ("overdue", [mediation_store.overdue(NOW)], None),
    ("review", [C.review_flagged.is_(True)], None),
    # The order index, or the stats index (received_at first as well, ties sorted by case
    # id as they come): both a range of the period.
    ("received range", [C.received_at >= NOW - timedelta(days=30), C.received_at < NOW],
     ("ix_mediation_cases_order", "ix_mediation_cases_stats")),
    ("external_id without channel", [C.external_id == "E1234"],
     "ix_mediation_cases_external_channel"),
    ("deep cursor", [tuple_(C.received_at, C.case_id) < tuple_(
        NOW - timedelta(days=730), "P00000001")], "ix_mediation_cases_order"),
    ("category, deep cursor", [C.category == "medical", tuple_(C.received_at, C.case_id)
                               < tuple_(NOW - timedelta(days=730), "P00000001")],
     "ix_mediation_cases_category_order"),
]


@pytest.mark.parametrize(("name", "where", "index"), LIST_FILTERS,
                         ids=[f[0] for f in LIST_FILTERS])
async def test_the_case_list_reads_a_page_by_index(
        engine: AsyncEngine, name: str, where: list[ColumnElement[bool]],
        index: str | tuple[str, ...] | None) -> None:
    assert_indexed(await plans_of(engine, case_list(*where)), index)


async def read_case(session: AsyncSession) -> None:
    """GET /v1/cases/{id}'s three reads."""
    case_id = "P00001234"
    await session.execute(select(Case).where(C.case_id == case_id))
    await session.execute(select(CaseHistory).where(H.case_id == case_id).order_by(H.at, H.id))
    await session.execute(select(SupervisionRecord).where(mediation_store.SV.case_id == case_id))


YEAR = [C.received_at >= datetime(2025, 1, 1, tzinfo=UTC),
        C.received_at < datetime(2026, 1, 1, tzinfo=UTC)]


def stats(dimensions: list[StatsDimension], *where: ColumnElement[bool] | None,
          jurisdiction_level: str | None = None) -> Callable[[AsyncSession], Awaitable[Any]]:
    """GET /v1/stats for 2025 grouped by `dimensions`, with the API's further filters."""
    async def run(session: AsyncSession) -> Any:
        return await mediation_store.count_cases(
            session, dimensions, [*YEAR, *(w for w in where if w is not None)],
            jurisdiction_level)
    return run


def limited(**limits: frozenset[str]) -> ColumnElement[bool] | None:
    """What a key limited to departments, jurisdictions or channels adds (`visible_to`)."""
    return mediation_store.visible_to(Principal(key_id="k", name="k", scopes=frozenset(),
                                                **limits))


# GET /v1/stats?group_by=month,department for 2025.
year_of_stats = stats([StatsDimension.MONTH, StatsDimension.DEPARTMENT])


async def supervise(session: AsyncSession) -> None:
    """The supervisor's due scan, then its gauges."""
    await mediation_store.due_for_supervision(session, NOW, 500)
    await mediation_store.case_gauges(session, NOW)


async def find_by_external_id(session: AsyncSession) -> None:
    await find_report(session, "hotline_12345", "E1234")


async def load_prior_cases(session: AsyncSession) -> None:
    """The router's prior-case query for a batch of 50 reports."""
    await PriorCases.load(session, [CaseReported.model_construct(
        case_id=f"NEW{n}", channel=Channel.HOTLINE_12345, external_id=f"N{n}",
        received_at=NOW, text="", reporter=PartyRef(phone_hash=f"{n:032x}"), parties=[])
        for n in range(50)])


def delivery_page(*where: ColumnElement[bool]) -> Callable[[AsyncSession], Awaitable[Any]]:
    """GET /v1/deliveries' query: filters, newest first, a page."""
    async def run(session: AsyncSession) -> Any:
        return (await session.execute(select(deliveries).where(*where)
                                      .order_by(deliveries.c.id.desc()).limit(101))).all()
    return run


async def test_a_case_and_its_history_are_read_by_index(engine: AsyncEngine) -> None:
    plans = await plans_of(engine, read_case)
    assert len(plans) == 3
    assert_indexed(plans[1:2], "ix_mediation_case_history_case")
    assert_indexed(plans)


NON_PERIODS = [d for d in StatsDimension if d not in PERIODS]
# (name, the query, whether only the stats index can serve it)
STATS: list[tuple[str, Callable[[AsyncSession], Awaitable[Any]], bool]] = [
    ("month and department", year_of_stats, True),
    ("no group", stats([]), True),
    *((f"{period.value} and every other dimension", stats([period, *NON_PERIODS]), True)
      for period in sorted(PERIODS)),
    ("towns", stats([StatsDimension.JURISDICTION], jurisdiction_level="town"), True),
    ("a department's key", stats([StatsDimension.MONTH, StatsDimension.DEPARTMENT],
                                 limited(departments=frozenset({"health", "civil_affairs"}))),
     True),
    ("a town's key, two channels", stats(
        [StatsDimension.MONTH], limited(jurisdictions=frozenset({"330102005"}),
                                        channels=frozenset({"court", "police"}))), False),
    # A rare lead department or category: its (filter, received_at) index is as good, and
    # a town's codes may be fewer rows than the period's.
    ("the API's filters", stats([StatsDimension.MONTH], C.channel == "court",
                                C.tier == "county", C.lead_department == "health",
                                C.category == "medical",
                                mediation_store.within_jurisdictions({"330102005"})), False),
]


@pytest.mark.parametrize(("name", "run", "only_stats_index"), STATS,
                         ids=[s[0] for s in STATS])
async def test_a_period_of_stats_reads_only_that_period(
        engine: AsyncEngine, name: str, run: Callable[[AsyncSession], Awaitable[Any]],
        only_stats_index: bool) -> None:
    """Every column the stats read is in the leaves of ix_mediation_cases_stats: a period's
    stats are that index's range of the period and nothing of the table, for every grouping
    and for limited keys (a column read and not included would make it a plain index scan,
    or worse). A selective filter may take its own (filter, received_at) index instead: also
    a range of the period."""
    plans = await plans_of(engine, run)
    found = [s for plan in plans for s in scans(plan["Plan"])]
    if only_stats_index:
        assert found == [("Index Only Scan", "mediation_cases", "ix_mediation_cases_stats")], \
            found
    else:
        # The planner takes the filter's index where fewer of its rows than of the
        # period's are read (a town's cases, all years), the period's range where not.
        assert_indexed(plans)


async def test_the_supervisor_scans_by_index(engine: AsyncEngine) -> None:
    plans = await plans_of(engine, supervise)
    assert_indexed(plans[:1], "ix_mediation_cases_supervision_due")
    assert_indexed(plans[1:], "ix_mediation_cases_status_order")


async def test_intake_finds_a_report_by_its_external_id(engine: AsyncEngine) -> None:
    assert_indexed(await plans_of(engine, find_by_external_id),
                   "uq_intake_cases_channel_external_id")


async def test_the_router_finds_prior_cases_by_index(engine: AsyncEngine) -> None:
    assert_indexed(await plans_of(engine, load_prior_cases), "ix_router_identity_hashes_lookup")


DELIVERY_FILTERS: list[tuple[str, list[ColumnElement[bool]], str | None]] = [
    ("newest", [], "notify_deliveries_pkey"),
    ("case", [deliveries.c.case_id == "P00001234"], "ix_notify_deliveries_case_id"),
    ("event", [deliveries.c.event_id == "0123456789abcdef"], "ix_notify_deliveries_event_id"),
    ("dead", [deliveries.c.status == "dead"], None),
    ("subscription, deep cursor", [deliveries.c.subscription_id == "sub3",
                                   deliveries.c.id < 1000], None),
]


@pytest.mark.parametrize(("name", "where", "index"), DELIVERY_FILTERS,
                         ids=[f[0] for f in DELIVERY_FILTERS])
async def test_the_delivery_log_reads_a_page_by_index(
        engine: AsyncEngine, name: str, where: list[ColumnElement[bool]], index: str | None
        ) -> None:
    assert_indexed(await plans_of(engine, delivery_page(*where)), index)


async def test_a_lost_index_is_seen(engine: AsyncEngine) -> None:
    """The check itself: without the index, the same query's plan fails it."""
    async with engine.begin() as conn:
        await conn.execute(text("DROP INDEX ix_mediation_cases_external_channel"))
    try:
        plans = await plans_of(engine, case_list(C.external_id == "E1234"))
        with pytest.raises(AssertionError, match="not used"):
            assert_indexed(plans, "ix_mediation_cases_external_channel")
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE INDEX ix_mediation_cases_external_channel "
                                    "ON mediation_cases (external_id, channel)"))
