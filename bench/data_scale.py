"""Cost as the data grows: years of cases loaded into the services' own tables, then the
reads staff and the services make, timed at each size (10k → 100k → 1M cases).

Cases with about ten history rows each, their intake reports, routing decisions, reporters'
phone hashes and notify deliveries (`bench/scale_data.py`) are loaded with COPY on
PostgreSQL (asyncpg's binary copy) and with executemany in one transaction per chunk on
SQLite, into schemas the services' migrations made. Mediation, intake and notify run as
their own processes; the case reads, lists and stats, intake's external-id lookup and
notify's delivery log are timed through their HTTP APIs on loopback, the router's prior-case
query and the supervisor's scans through the store functions those services call. Each
figure is set against the same query in raw SQL on the same database in the same run
(`ratio` = API p50 / raw p50): what the service adds on top of the database.

    uv run python -m bench.data_scale --db postgres --max-cases 1000000
    uv run python -m bench.data_scale --db sqlite --max-cases 100000
    uv run python -m bench.plans_at_scale --cases 1000000 --time-ordered --database fq_1m
    uv run python -m bench.data_scale --seeded fq_1m    # the APIs on those million cases
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import random
import re
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bench import scale_data as data
from bench.common import Infra, percentile, service_database_url, start_infra, start_service
from contracts.enums import Channel
from contracts.events import CaseReported, PartyRef
from kit import migrate
from kit.db import create_engine
from services.mediation import store as mediation_store
from services.router.handlers import PriorCases
from tests.infra import AUTH

SIZES = (10_000, 100_000, 1_000_000)
CHUNK = 20_000
SERVICE_OF = {"mediation_cases": "mediation", "mediation_case_history": "mediation",
              "mediation_supervision": "mediation", "intake_cases": "intake",
              "router_decisions": "router", "router_identity_hashes": "router",
              "notify_deliveries": "notify"}
# The schedulers must not start working through the loaded cases while they are timed.
QUIET_SCHEDULERS = {"FQ_SUPERVISION_INTERVAL_SECONDS": "86400",
                    "FQ_CASE_GAUGES_INTERVAL_SECONDS": "86400",
                    "FQ_PERSONAL_DATA_CHECK_SECONDS": "86400"}


# --- loading -------------------------------------------------------------------------------

def _pg_value(value: Any) -> Any:
    return orjson.dumps(value).decode() if isinstance(value, dict | list) else value


def _sqlite_value(value: Any) -> Any:
    # As SQLAlchemy stores them on SQLite: JSON as text, times as naive UTC text, 0/1.
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


class Loader:
    """Adds cases [loaded, n) to the tables, COPY on PostgreSQL, executemany on SQLite."""

    def __init__(self, infra: Infra, db: str) -> None:
        self.infra, self.db = infra, db
        self.loaded = 0

    async def grow_to(self, n: int) -> float:
        started = time.monotonic()
        if self.db == "postgres":
            conn = await asyncpg.connect(_dsn(self.infra.database_url))
            try:
                # A bulk load's usual way: indexes (not the constraints') dropped, then built
                # again from their own definitions once the rows are in: faster than keeping
                # fourteen indexes up to date row by row.
                await conn.execute("SET maintenance_work_mem = '256MB'")
                indexes = await conn.fetch(
                    "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = "
                    "ANY($1) AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
                    "WHERE c.conname = i.indexname)", list(SERVICE_OF))
                for index in indexes:
                    await conn.execute(f'DROP INDEX "{index["indexname"]}"')
                for done, chunk in data.chunks(self.loaded, n, CHUNK):
                    for table, rows in chunk.tables.items():
                        if rows:
                            columns = list(rows[0])
                            await conn.copy_records_to_table(
                                table, columns=columns,
                                records=[tuple(_pg_value(r[c]) for c in columns) for r in rows])
                    self._progress(done, n)
                for index in indexes:
                    await conn.execute(index["indexdef"])
                await conn.execute("ANALYZE")
            finally:
                await conn.close()
        else:
            files = {s: sqlite3.connect(_sqlite_path(self.infra, s))
                     for s in set(SERVICE_OF.values())}
            try:
                for done, chunk in data.chunks(self.loaded, n, CHUNK):
                    for table, rows in chunk.tables.items():
                        if rows:
                            columns = list(rows[0])
                            file = files[SERVICE_OF[table]]
                            file.executemany(
                                f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                                f"({', '.join('?' * len(columns))})",
                                [tuple(_sqlite_value(r[c]) for c in columns) for r in rows])
                    for file in files.values():
                        file.commit()
                    self._progress(done, n)
            finally:
                for file in files.values():
                    file.close()
        sys.stderr.write("\n")
        return time.monotonic() - started

    def _progress(self, done: int, n: int) -> None:
        self.loaded += done
        sys.stderr.write(f"\rloading cases {self.loaded:,}/{n:,}")
        sys.stderr.flush()


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def _sqlite_path(infra: Infra, service: str) -> str:
    return service_database_url(infra, service).split("///", 1)[1]


# --- what is timed -------------------------------------------------------------------------

@dataclass
class Query:
    name: str
    run: Callable[[], Awaitable[Any]]
    raw_sql: str | None = None  # PostgreSQL's form; $n become ? on SQLite
    raw_params: Callable[[], list[Any]] | None = None
    samples: int = 40


def _cursor(received_at: datetime, case_id: str) -> str:
    raw = orjson.dumps([received_at.isoformat(), case_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


LIST_ORDER = " ORDER BY received_at DESC, case_id DESC LIMIT 51"


class Generated:
    """The cases bench.scale_data generates, as the measures name them."""

    case_id, external_id, event_id = data.case_id, data.external_id, data.event_id
    channel_of, phone_hash = data.channel_of, data.phone_hash
    VILLAGES, END, RARE_WORD = data.VILLAGES, data.END, data.RARE_WORD
    LEAD_DEPARTMENT, SUBSCRIPTION = "education", "sub03"


class Seeded:
    """The cases bench.plans_at_scale's seed wrote (tests/integration/test_query_plans.py's
    `seed_statements`: case g = 1…n is P0000000g, E g, its channel the g % 6th, …)."""

    CHANNELS = (Channel.HOTLINE_12345, Channel.HOTLINE_12345, Channel.GRID, Channel.WALK_IN,
                Channel.POLICE, Channel.COURT)
    VILLAGES = tuple(f"330102{t:03d}{v:03d}" for t in range(1, 13) for v in range(1, 16))
    END, RARE_WORD = datetime(2026, 12, 7, 8, tzinfo=UTC), data.RARE_WORD
    # A rare lead department there, as education is among the generated cases.
    LEAD_DEPARTMENT, SUBSCRIPTION = "health", "sub3"

    @staticmethod
    def case_id(i: int) -> str:
        return f"P{i + 1:08d}"

    @staticmethod
    def external_id(i: int) -> str:
        return f"E{i + 1}"

    @staticmethod
    def event_id(i: int) -> str:
        return hashlib.md5(Seeded.case_id(i).encode()).hexdigest()

    @staticmethod
    def channel_of(i: int) -> Channel:
        return Seeded.CHANNELS[(i + 1) % 6]

    @staticmethod
    def phone_hash(n: int) -> str:
        return hashlib.md5(str(n).encode()).hexdigest()


def list_filters(ids: Any) -> list[tuple[str, dict[str, str], str, list[Any]]]:
    """(name, API parameters, the WHERE clause of the same query in raw SQL, its parameters),
    with the values of `ids`' cases (bench.scale_data's, or plans_at_scale's seed)."""
    village, lead = ids.VILLAGES[17], ids.LEAD_DEPARTMENT
    return [
        ("list newest", {}, "TRUE", []),
        ("list status=archived", {"status": "archived"}, "status = $1", ["archived"]),
        ("list status=awaiting_dispatch", {"status": "awaiting_dispatch"}, "status = $1",
         ["awaiting_dispatch"]),
        ("list channel=court", {"channel": "court"}, "channel = $1", ["court"]),
        ("list category=medical", {"category": "medical"}, "category = $1", ["medical"]),
        ("list risk=red", {"risk": "red"}, "risk = $1", ["red"]),
        ("list tier=county", {"tier": "county"}, "tier = $1", ["county"]),
        ("list department=health", {"department": "health"},
         "(lead_department = $1 OR CAST(cooperating_departments AS TEXT) LIKE $2)",
         ["health", '%"health"%']),
        (f"list lead_department={lead}", {"lead_department": lead}, "lead_department = $1",
         [lead]),
        ("list jurisdiction=village", {"jurisdiction": village},
         # A subtree is a range of codes (mediation's store.subtree), as the API sends it.
         "jurisdiction_code >= $1 AND jurisdiction_code <= $2",
         [village, village + "9" * (16 - len(village))]),
        ("list overdue=true", {"overdue": "true"}, "", []),  # raw form built below (now)
        ("list review=true", {"review": "true"}, "review_flagged = $1", [True]),
        ("list received a month", {"received_from": "2024-06-01", "received_to": "2024-07-01"},
         "received_at >= $1 AND received_at < $2",
         [datetime(2024, 5, 31, 16, tzinfo=UTC), datetime(2024, 6, 30, 16, tzinfo=UTC)]),
        ("list text=水库", {"text": ids.RARE_WORD}, "text LIKE $1", [f"%{ids.RARE_WORD}%"]),
    ]


class Measure:
    def __init__(self, db: str, urls: dict[str, str], infra: Infra, size: int,
                 engines: dict[str, AsyncEngine], ids: Any = data) -> None:
        self.db, self.urls, self.infra, self.size = db, urls, infra, size
        self.data = ids
        self.engines = engines
        self.rng = random.Random(size)
        self.http = httpx.AsyncClient(headers=AUTH, timeout=120)

    async def get(self, service: str, path: str, params: dict[str, str] | None = None) -> Any:
        response = await self.http.get(self.urls[service] + path, params=params)
        if response.status_code != 200:
            raise RuntimeError(f"{path} {params}: {response.status_code} {response.text[:300]}")
        return response.json()

    def random_case(self) -> int:
        return self.rng.randrange(self.size)

    def queries(self, deep: tuple[datetime, str]) -> list[Query]:
        now = datetime.now(UTC)
        qs = [Query("case read", lambda: self.get(
            "mediation", f"/v1/cases/{self.data.case_id(self.random_case())}"),
            "SELECT * FROM mediation_cases c "
            "LEFT JOIN mediation_case_history h ON h.case_id = c.case_id "
            "LEFT JOIN mediation_supervision s ON s.case_id = c.case_id "
            "WHERE c.case_id = $1 ORDER BY h.at, h.id",
            lambda: [self.data.case_id(self.random_case())], samples=100)]
        for name, params, where, raw in list_filters(self.data):
            if name == "list overdue=true":
                where = ("((status = 'routed' AND accept_by < $1) OR (status IN "
                         "('accepted','awaiting_dispatch','in_mediation','returned','routed') "
                         "AND resolve_by < $1))")
                raw = [now]
            qs.append(Query(name, (lambda p=params: self.get("mediation", "/v1/cases", p)),
                            "SELECT * FROM mediation_cases WHERE " + where + LIST_ORDER,
                            (lambda r=raw: r)))
        at, cid = deep
        cursor = _cursor(at, cid)
        deep_where = "(received_at, case_id) < ($1, $2)"
        qs.append(Query("list deep page (95% back)", lambda: self.get(
            "mediation", "/v1/cases", {"cursor": cursor}),
            "SELECT * FROM mediation_cases WHERE " + deep_where + LIST_ORDER,
            lambda: [at, cid]))
        qs.append(Query("list category=medical, deep page", lambda: self.get(
            "mediation", "/v1/cases", {"category": "medical", "cursor": cursor}),
            "SELECT * FROM mediation_cases WHERE category = 'medical' AND " + deep_where
            + LIST_ORDER, lambda: [at, cid]))
        qs.append(Query("list external_id", lambda: self.get(
            "mediation", "/v1/cases", {"external_id": self.data.external_id(self.random_case())}),
            "SELECT * FROM mediation_cases WHERE external_id = $1" + LIST_ORDER,
            lambda: [self.data.external_id(self.random_case())], samples=100))
        stats_sql = (
            "SELECT to_char(date_trunc('month', timezone('Asia/Shanghai', received_at)), "
            "'YYYY-MM') AS m, lead_department, count(*), count(closed_at), count(resolved_at), "
            "count(satisfaction), sum(satisfaction) FROM mediation_cases "
            "WHERE received_at >= $1 AND received_at < $2 GROUP BY 1, 2 ORDER BY 1, 2")
        if self.db == "sqlite":
            stats_sql = stats_sql.replace(
                "to_char(date_trunc('month', timezone('Asia/Shanghai', received_at)), "
                "'YYYY-MM')", "strftime('%Y-%m', received_at, '+8 hours')")
        qs.append(Query("stats a year by month, department", lambda: self.get(
            "mediation", "/v1/stats", {"group_by": "month,department",
                                       "received_from": "2025-01-01",
                                       "received_to": "2026-01-01"}),
            stats_sql, lambda: [datetime(2024, 12, 31, 16, tzinfo=UTC),
                                datetime(2025, 12, 31, 16, tzinfo=UTC)], samples=15))
        qs.append(Query("intake external_id lookup", lambda: self.get(
            "intake", f"/v1/intake/hotline_12345/reports/{self.hotline_external_id()}"),
            "SELECT case_id, received_at FROM intake_cases WHERE channel = $1 "
            "AND external_id = $2",
            lambda: ["hotline_12345", self.hotline_external_id()], samples=100))
        qs.append(Query("router prior cases (100 reports)", self.prior_cases,
                        "SELECT identity_hash, case_id, received_at FROM router_identity_hashes "
                        "WHERE identity_hash = ANY($1) AND received_at >= $2",
                        lambda: [self.hashes(100), self.data.END - timedelta(days=90)]))
        qs.append(Query("supervisor due scan (500)", self.due_scan,
                        "SELECT * FROM mediation_cases WHERE supervision_due_at <= $1 "
                        "ORDER BY supervision_due_at LIMIT 500", lambda: [now]))
        qs.append(Query("supervisor gauges", self.gauges,
                        "SELECT tier, lead_department, count(*) FROM mediation_cases "
                        "WHERE status IN ('accepted','awaiting_dispatch','escalated','failed',"
                        "'in_mediation','referred','reported','resolved','returned',"
                        "'returned_to_source','routed','withdrawn') GROUP BY 1, 2",
                        lambda: [], samples=15))
        deliveries = "SELECT * FROM notify_deliveries WHERE {} ORDER BY id DESC LIMIT 101"
        qs += [
            Query("deliveries newest", lambda: self.get("notify", "/v1/deliveries"),
                  deliveries.format("TRUE"), lambda: []),
            Query("deliveries case_id", lambda: self.get(
                "notify", "/v1/deliveries", {"case_id": self.data.case_id(self.random_case())}),
                deliveries.format("case_id = $1"),
                lambda: [self.data.case_id(self.random_case())]),
            Query("deliveries event_id", lambda: self.get(
                "notify", "/v1/deliveries", {"event_id": self.data.event_id(self.random_case())}),
                deliveries.format("event_id = $1"),
                lambda: [self.data.event_id(self.random_case())]),
            Query("deliveries status=dead", lambda: self.get(
                "notify", "/v1/deliveries", {"status": "dead"}),
                deliveries.format("status = $1"), lambda: ["dead"]),
            Query("deliveries subscription, deep page", lambda: self.get(
                "notify", "/v1/deliveries", {"subscription_id": self.data.SUBSCRIPTION,
                                             "cursor": str(self.size // 10)}),
                deliveries.format("subscription_id = $1 AND id < $2"),
                lambda: [self.data.SUBSCRIPTION, self.size // 10]),
        ]
        return qs

    def hotline_external_id(self) -> str:
        while True:
            i = self.random_case()
            if self.data.channel_of(i) is Channel.HOTLINE_12345:
                return self.data.external_id(i)

    def hashes(self, n: int) -> list[str]:
        return [self.data.phone_hash(self.rng.randrange(max(1, self.size // 3))) for _ in range(n)]

    async def prior_cases(self) -> Any:
        reports = [CaseReported.model_construct(
            case_id=f"NEW{n}", channel=Channel.HOTLINE_12345, external_id=f"N{n}",
            received_at=self.data.END, text="", reporter=PartyRef(phone_hash=h), parties=[])
            for n, h in enumerate(self.hashes(100))]
        async with AsyncSession(self.engines["router"]) as session:
            return await PriorCases.load(session, reports)

    async def due_scan(self) -> Any:
        async with AsyncSession(self.engines["mediation"]) as session:
            return await mediation_store.due_for_supervision(session, datetime.now(UTC), 500)

    async def gauges(self) -> Any:
        async with AsyncSession(self.engines["mediation"]) as session:
            return await mediation_store.case_gauges(session, datetime.now(UTC))


# --- timing --------------------------------------------------------------------------------

class Raw:
    """The same queries in raw SQL on one connection of the bench's own: the baseline."""

    def __init__(self, db: str, infra: Infra) -> None:
        self.db, self.infra = db, infra
        self.pg: asyncpg.Connection | None = None
        self.files: dict[str, sqlite3.Connection] = {}

    async def open(self) -> None:
        if self.db == "postgres":
            self.pg = await asyncpg.connect(_dsn(self.infra.database_url))
        else:
            self.files = {s: sqlite3.connect(_sqlite_path(self.infra, s))
                          for s in set(SERVICE_OF.values())}

    async def close(self) -> None:
        if self.pg:
            await self.pg.close()
        for file in self.files.values():
            file.close()

    async def run(self, sql: str, params: list[Any]) -> Any:
        if self.pg:
            return await self.pg.fetch(sql, *params)
        service = next(s for t, s in SERVICE_OF.items() if t in sql)
        sql, params = _sqlite_form(sql, params)
        return self.files[service].execute(sql, params).fetchall()

    async def plan(self, sql: str, params: list[Any]) -> str:
        """The plan's scans of tables, in short: how the database answers."""
        if not self.pg:
            service = next(s for t, s in SERVICE_OF.items() if t in sql)
            sql, params = _sqlite_form(sql, params)
            rows = self.files[service].execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            return "; ".join(r[-1] for r in rows)
        [row] = await self.pg.fetch("EXPLAIN (FORMAT JSON) " + sql, *params)
        nodes: list[str] = []

        def walk(node: dict[str, Any]) -> None:
            kind = node["Node Type"]
            if "Scan" in kind and "Relation Name" in node:
                nodes.append(f"{kind} {node.get('Index Name') or node['Relation Name']}")
            elif kind in ("Sort", "Incremental Sort", "HashAggregate", "GroupAggregate"):
                nodes.append(kind)
            for child in node.get("Plans", []):
                walk(child)
        walk(json.loads(row[0])[0]["Plan"])
        return ", ".join(nodes)


def _sqlite_form(sql: str, params: list[Any]) -> tuple[str, list[Any]]:
    """PostgreSQL's form of a raw query in SQLite's: ? in order of use, arrays spread."""
    sql = sql.replace("CAST(cooperating_departments AS TEXT)", "cooperating_departments")
    sql = sql.replace("WHERE TRUE", "WHERE 1")
    out: list[Any] = []

    def placeholder(match: re.Match[str]) -> str:
        if match.group(1):  # = ANY($n): an array, spread into IN (?, ?, …)
            values = params[int(match.group(1)) - 1]
            out.extend(values)
            return f"IN ({', '.join('?' * len(values))})"
        out.append(params[int(match.group(2)) - 1])
        return "?"
    sql = re.sub(r"= ANY\(\$(\d+)\)|\$(\d+)", placeholder, sql)
    return sql, [_sqlite_value(p) for p in out]


async def timed(call: Callable[[], Awaitable[Any]], samples: int) -> list[float]:
    await call()  # warm: the first call pays for connections and statement caches
    out = []
    for _ in range(samples):
        started = time.perf_counter()
        await call()
        out.append(time.perf_counter() - started)
    return out


async def measure_size(measure: Measure, raw: Raw, deep: tuple[datetime, str]
                       ) -> list[dict[str, Any]]:
    rows = []
    for query in measure.queries(deep):
        api = await timed(query.run, query.samples)
        figures: dict[str, Any] = {"query": query.name, "samples": query.samples,
                                   "p50_ms": round(percentile(api, 50) * 1000, 2),
                                   "p99_ms": round(percentile(api, 99) * 1000, 2)}
        if query.raw_sql and query.raw_params:
            sql, make = query.raw_sql, query.raw_params
            base = await timed(lambda s=sql, m=make: raw.run(s, m()), query.samples)  # type: ignore[misc]
            figures["raw_p50_ms"] = round(percentile(base, 50) * 1000, 2)
            figures["ratio"] = round(percentile(api, 50) / percentile(base, 50), 1)
            figures["plan"] = await raw.plan(sql, make())
        rows.append(figures)
        sys.stderr.write(f"  {query.name}: p50 {figures['p50_ms']} ms, "
                         f"p99 {figures['p99_ms']} ms\n")
    return rows


async def deep_position(raw: Raw, size: int) -> tuple[datetime, str]:
    """A case 95 % of the way back from the newest: where a deep page starts."""
    sql = ("SELECT received_at, case_id FROM mediation_cases ORDER BY received_at DESC, "
           "case_id DESC LIMIT 1 OFFSET $1")
    [row] = await raw.run(sql, [int(size * 0.95)])
    at = row[0] if isinstance(row[0], datetime) else datetime.fromisoformat(row[0])
    return (at if at.tzinfo else at.replace(tzinfo=UTC)), row[1]


def print_table(db: str, results: dict[int, list[dict[str, Any]]]) -> None:
    sizes = sorted(results)
    names = [r["query"] for r in results[sizes[0]]]
    width = max(len(n) for n in names)
    print(f"\ndata scale, {db}: API p50 / p99 ms (ratio API p50 / raw SQL p50) at each size")
    header = f"{'query':<{width}}  " + "  ".join(f"{s:>28,}" for s in sizes)
    print(header)
    print("-" * len(header))
    for name in names:
        cells = []
        for s in sizes:
            r = next(x for x in results[s] if x["query"] == name)
            ratio = f" (×{r['ratio']})" if "ratio" in r else ""
            cells.append(f"{r['p50_ms']:>8.1f} / {r['p99_ms']:>8.1f}{ratio:>10}")
        print(f"{name:<{width}}  " + "  ".join(cells))
    print(f"\nplans at {sizes[-1]:,} cases (raw SQL)", flush=True)
    for r in results[sizes[-1]]:
        if "plan" in r:
            print(f"{r['query']:<{width}}  {r['plan']}")


async def run(args: argparse.Namespace) -> None:
    sizes = [s for s in SIZES if s < args.max_cases] + [args.max_cases]
    infra = await start_infra(args.db)
    ids: Any = Generated
    if args.seeded:
        # A database bench.plans_at_scale seeded and kept: measured as it is, nothing loaded.
        infra.database_url = infra.database_url.rsplit("/", 1)[0] + "/" + args.seeded
        ids = Seeded
    engines: dict[str, AsyncEngine] = {}
    raw = Raw(args.db, infra)
    try:
        for service in ("mediation", "intake", "router", "notify"):
            engine = create_engine(service_database_url(infra, service))
            store = __import__(f"services.{service}.store", fromlist=["metadata"])
            await migrate.upgrade(engine, service, store.metadata)
            engines[service] = engine
        urls = {s: start_service(infra, s, **QUIET_SCHEDULERS).url
                for s in ("mediation", "intake", "notify")}
        await raw.open()
        loader = Loader(infra, args.db)
        results: dict[int, list[dict[str, Any]]] = {}
        if args.seeded:
            [(held,)] = await raw.run("SELECT count(*) FROM mediation_cases", [])
            sizes = [held]
        for size in sizes:
            if args.seeded:
                sys.stderr.write(f"{size:,} cases in {args.seeded}; timing\n")
            else:
                load_seconds = await loader.grow_to(size)
                sys.stderr.write(f"{size:,} cases loaded ({load_seconds:.0f} s); timing\n")
            measure = Measure(args.db, urls, infra, size, engines, ids)
            try:
                results[size] = await measure_size(measure, raw, await deep_position(raw, size))
            finally:
                await measure.http.aclose()
            # The table so far and this size's JSON lines at once: a long run cut short
            # still leaves every size it finished.
            print_table(args.db, results)
            for r in results[size]:
                print(json.dumps({"bench": "data_scale", "db": args.db, "cases": size, **r},
                                 ensure_ascii=False), flush=True)
    finally:
        await raw.close()
        for engine in engines.values():
            await engine.dispose()
        await infra.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--max-cases", type=int, default=None,
                        help="the largest size (default: 1,000,000 on PostgreSQL, "
                        "100,000 on SQLite); the sizes on the way are 10k, 100k, 1M below it")
    parser.add_argument("--seeded", default="", metavar="DATABASE",
                        help="PostgreSQL: measure the cases of this database, seeded and kept "
                        "by `bench.plans_at_scale --database DATABASE` (a million in minutes), "
                        "instead of loading the generated ones")
    args = parser.parse_args()
    if args.seeded:
        args.db = "postgres"
    if args.max_cases is None:
        args.max_cases = 1_000_000 if args.db == "postgres" else 100_000
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
