"""Router stage throughput: N CaseReported events → N CaseRouted events and N decisions stored.

Baseline in the same run, on the same broker: a bare aiokafka consumer→producer passthrough
with no logic. Prints `ratio = router / passthrough`.

    uv run python -m bench.router --cases 20000 --db postgres
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from datetime import UTC, datetime

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import (
    TEXTS,
    collect,
    cpu_seconds,
    passthrough,
    percentile,
    produce,
    progress,
    report,
    service_database_url,
    start_infra,
    start_service,
)
from contracts.enums import Channel
from contracts.events import CaseReported, CaseReportedEvent, PartyRef
from contracts.topics import CASE_REPORTED, CASE_ROUTED
from kit.bus import encode
from kit.privacy import keyed_hash, mask_phone

# Ten characters no word list uses, to spell a number without digits (which the router
# would read as money or a head count).
STEMS = "甲乙丙丁戊己庚辛壬癸"


def tagged(text: str, i: int) -> str:
    """`text` made unique to case `i`, so that no reading of a text can be reused."""
    tag = "".join(STEMS[int(d)] for d in str(i))
    return f"{text}（登记{tag}）"


def reported_events(n: int, seed: int = 1, distinct: bool = False
                    ) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out = []
    for i in range(n):
        case_id = f"BENCH-{i:07d}"
        phone = f"139{rng.randrange(10**8):08d}"
        report = CaseReported(
            case_id=case_id, channel=Channel.HOTLINE_12345, external_id=f"B{i}",
            received_at=now,
            text=tagged(TEXTS[i % len(TEXTS)], i) if distinct else TEXTS[i % len(TEXTS)],
            reporter=PartyRef(phone_masked=mask_phone(phone),
                              phone_hash=keyed_hash("bench", "phone", phone)))
        event = CaseReportedEvent.wrap(report, source="bench", subject=case_id)
        out.append((case_id.encode(), encode(event)))
    return out


async def run(args: argparse.Namespace) -> None:
    infra = await start_infra(args.db, args.partitions)
    try:
        items = reported_events(args.cases, distinct=args.distinct_texts)
        base_elapsed = await passthrough(infra, items)
        base_rate = args.cases / base_elapsed

        routers = [start_service(infra, "router", FQ_CONSUMER_MAX_RECORDS=str(args.max_records))
                   for _ in range(args.processes)]
        if args.processes > 1:
            await asyncio.sleep(5)  # the consumer group settles after the last one joins
        warm = reported_events(1, seed=99)
        warm = [(b"WARM", warm[0][1].replace(b"BENCH-0000000", b"WARMUP-000000"))]
        await produce(infra.broker.bootstrap, CASE_REPORTED, warm)
        await collect(infra.broker.bootstrap, CASE_ROUTED, 1, 60)

        cpu_start = cpu_seconds(*routers)
        wall_start = time.time()
        await produce(infra.broker.bootstrap, CASE_REPORTED, items)
        got = await collect(infra.broker.bootstrap, CASE_ROUTED, args.cases + 1, 600,
                            progress("router", args.cases + 1))
        cpu_per_case = (cpu_seconds(*routers) - cpu_start) / args.cases
        routed = [(orjson.loads(v), ts) for v, ts in got]
        bench = [(e, ts) for e, ts in routed if e["subject"].startswith("BENCH-")]
        elapsed = max(ts for _, ts in bench) / 1000 - wall_start
        sent = {orjson.loads(v)["subject"]: ts for v, ts in await collect(
            infra.broker.bootstrap, CASE_REPORTED, args.cases + 1, 60)}
        # Per case: routed event's send time − reported event's send time (all sent at once,
        # so this includes the wait in the queue behind earlier cases).
        latencies = [(ts - sent[e["subject"]]) / 1000 for e, ts in bench]
        engine = create_async_engine(service_database_url(infra, "router"))
        async with engine.connect() as conn:
            stored = (await conn.execute(text(
                "SELECT count(*) FROM router_decisions WHERE case_id LIKE 'BENCH-%'"))).scalar_one()
        await engine.dispose()
        rate = len(bench) / elapsed
        report(f"router stage, {args.cases} cases, {args.db}, {args.processes} process(es), "
               f"{args.partitions} partitions"
               f"{', every text distinct' if args.distinct_texts else ''}", [
                   ("passthrough (msg/s)", f"{base_rate:,.0f}"),
                   ("router (cases/s)", f"{rate:,.0f}"),
                   ("ratio = router / passthrough", f"{rate / base_rate:.3f}"),
                   ("router CPU per case (µs)", f"{cpu_per_case * 1e6:,.0f}"),
                   ("routed events", f"{len(bench)}"),
                   ("decisions stored", f"{stored}"),
                   ("latency p50 (ms)", f"{percentile(latencies, 50) * 1000:,.0f}"),
                   ("latency p99 (ms)", f"{percentile(latencies, 99) * 1000:,.0f}"),
               ], {"bench": "router", "db": args.db, "cases": args.cases,
                   "processes": args.processes, "partitions": args.partitions,
                   "distinct_texts": args.distinct_texts,
                   "passthrough_per_s": round(base_rate), "router_per_s": round(rate),
                   "ratio": round(rate / base_rate, 3),
                   "cpu_us_per_case": round(cpu_per_case * 1e6), "routed": len(bench),
                   "stored": stored, "p50_ms": round(percentile(latencies, 50) * 1000),
                   "p99_ms": round(percentile(latencies, 99) * 1000)})
    finally:
        await infra.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=20000)
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--max-records", type=int, default=2000)
    parser.add_argument("--distinct-texts", action="store_true",
                        help="make every report's text unique (no reading is reused)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
