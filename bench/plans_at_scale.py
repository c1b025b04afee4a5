"""The database's part of each growing query at a given size, fast to load: rows written by
PostgreSQL itself (the seed of tests/integration/test_query_plans.py: cases, three history
rows each, reports, phone hashes, deliveries) into the services' migrated tables, then each
query the services send (captured from the real code, as that test does) timed with
`EXPLAIN ANALYZE`, the planner free to choose. The time the database spends, and the plan
shape: what grows with the table is here; the services' own cost on top is what
`bench.data_scale` measures against its raw baseline (ratio) at the sizes it loads.

    uv run python -m bench.plans_at_scale --cases 1000000

`--database NAME` keeps the database (named, not dropped at the end) and reuses it when it
already holds cases: the seed is written once (it takes minutes at a million) and later runs
only migrate it to the head (a new index is built then) and measure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any

from kit import migrate
from kit.db import create_engine
from services.intake import store as intake_store
from services.mediation import store as mediation_store
from services.notify import store as notify_store
from services.router import store as router_store
from tests.infra import (
    PG_ADMIN_URL,
    create_pg_database,
    drop_pg_database,
    postgres_available,
)
from tests.integration.test_query_plans import (
    DELIVERY_FILTERS,
    LIST_FILTERS,
    case_list,
    delivery_page,
    find_by_external_id,
    load_prior_cases,
    plans_of,
    read_case,
    scans,
    seed_statements,
    supervise,
    year_of_stats,
)

ANALYZE = "EXPLAIN (ANALYZE, FORMAT JSON) "


def checks() -> list[tuple[str, Any]]:
    return [("case read (3 queries)", read_case),
            *((f"list {name}", case_list(*where)) for name, where, _ in LIST_FILTERS),
            ("stats a year by month, department", year_of_stats),
            ("supervisor due scan + gauges", supervise),
            ("intake external_id lookup", find_by_external_id),
            ("router prior cases (50 reports)", load_prior_cases),
            *((f"deliveries {name}", delivery_page(*where))
              for name, where, _ in DELIVERY_FILTERS)]


def shape(plans: list[dict[str, Any]]) -> str:
    return "; ".join(", ".join(f"{kind} {index or table}" for kind, table, index
                               in scans(p["Plan"])) for p in plans)


async def run(args: argparse.Namespace) -> None:
    if not postgres_available():
        raise SystemExit("no PostgreSQL on 127.0.0.1:5432 (or FQ_TEST_DATABASE_URL)")
    if args.database:
        url, name = await named_database(args.database)
    else:
        url, name = await create_pg_database()
    engine = create_engine(url)
    try:
        started = time.monotonic()
        for component, metadata in (("mediation", mediation_store.metadata),
                                     ("intake", intake_store.metadata),
                                     ("router", router_store.metadata),
                                     ("notify", notify_store.metadata)):
            await migrate.upgrade(engine, component, metadata)
        sys.stderr.write(f"migrated ({time.monotonic() - started:.0f} s)\n")
        async with engine.connect() as conn:
            held = (await conn.exec_driver_sql(
                "SELECT count(*) FROM mediation_cases")).scalar_one()
        seeded = held == 0
        if not seeded and held != args.cases:
            raise SystemExit(f"database {name} holds {held:,} cases, not {args.cases:,}")
        if seeded:
            async with engine.begin() as conn:
                for statement in seed_statements(args.cases):
                    await conn.exec_driver_sql(statement)
            sys.stderr.write(
                f"{args.cases:,} cases written ({time.monotonic() - started:.0f} s)\n")
        else:
            sys.stderr.write(f"reusing {name}: {held:,} cases\n")
        if args.time_ordered and seeded:
            # A county's table fills in the order cases arrive; the seed scatters receipt
            # times over every page. Rewritten in received order, a range of receipt times
            # is a range of pages, as in a real table.
            async with engine.begin() as conn:
                await conn.exec_driver_sql(
                    "CLUSTER mediation_cases USING ix_mediation_cases_order")
                await conn.exec_driver_sql("ANALYZE mediation_cases")
            sys.stderr.write(f"rewritten in received order ({time.monotonic() - started:.0f} s)\n")
        if args.vacuum:
            # As autovacuum leaves a table that filled over years: the visibility map set
            # (an index-only scan reads the table for pages it does not mark all-visible).
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.exec_driver_sql("VACUUM ANALYZE mediation_cases")
            sys.stderr.write(f"vacuumed ({time.monotonic() - started:.0f} s)\n")
        rows = []
        for label, runner in checks():
            times, plans = [], []
            for _ in range(args.repeat):
                plans = await plans_of(engine, runner, explain=ANALYZE, seqscan=True)
                times.append(sum(p["Planning Time"] + p["Execution Time"] for p in plans))
            rows.append({"query": label, "db_ms": round(statistics.median(times), 2),
                         "db_max_ms": round(max(times), 2), "plan": shape(plans)})
            sys.stderr.write(f"  {label}: {rows[-1]['db_ms']} ms\n")
        width = max(len(r["query"]) for r in rows)
        print(f"\ndatabase time per query at {args.cases:,} cases (EXPLAIN ANALYZE, median of "
              f"{args.repeat}; max)")
        for r in rows:
            print(f"{r['query']:<{width}}  {r['db_ms']:>9.2f}  {r['db_max_ms']:>9.2f}  "
                  f"{r['plan']}")
        for r in rows:
            print(json.dumps({"bench": "plans_at_scale", "cases": args.cases,
                              "time_ordered": args.time_ordered, "vacuumed": args.vacuum,
                              **r},
                             ensure_ascii=False))
    finally:
        await engine.dispose()
        if not args.database:
            await drop_pg_database(name)


async def named_database(name: str) -> tuple[str, str]:
    """The database `name` on the test server, created if missing; (url, name)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    base = os.environ.get("FQ_TEST_DATABASE_URL", PG_ADMIN_URL)
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            exists = (await conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                         {"n": name})).first()
            if not exists:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return base.rsplit("/", 1)[0] + "/" + name, name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--time-ordered", action="store_true",
                        help="rewrite the cases in received order, as a table filled day "
                        "by day is (CLUSTER), before measuring")
    parser.add_argument("--no-vacuum", dest="vacuum", action="store_false",
                        help="measure without vacuuming the cases first (visibility map as "
                        "the seed or CLUSTER left it: empty)")
    parser.add_argument("--database", default="",
                        help="a database of this name, kept after the run and reused by the "
                        "next (seeded only when empty; drop it yourself when done)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
