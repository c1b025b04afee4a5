"""Mediation and notify stage throughput: the events of N cases already on the topics →
every one handled (its processed-event key stored). Mediation takes each case's reported
and routed events; notify those and the case's first lifecycle event, with two catch-all
webhook subscriptions (deliveries are queued, the sending is not measured here).

Baseline in the same run, on the same broker: the bare aiokafka consumer→producer
passthrough of bench/router.py. Prints `ratio = stage / passthrough` in events per second.

    uv run python -m bench.consumers --stage mediation --cases 5000 --db postgres [--processes N]

`--overdue` (mediation): once every event is handled and published, every case's clocks are
moved 40 days back, so all six supervision levels of each (acceptance and resolution:
warning, level 1, level 2) are due at once, as after an outage, and the supervisor's work
on them is measured by itself: cases/s until every level is recorded, and mediation's CPU
per case until then and until the relay has published every event.

    uv run python -m bench.consumers --stage mediation --cases 5000 --db postgres --overdue
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import (
    cpu_seconds,
    passthrough,
    produce,
    progress,
    report,
    service_database_url,
    start_infra,
    start_service,
)
from contracts.enums import Category, Channel, Department, Risk, Status, Tier
from contracts.events import (
    CaseLifecycle,
    CaseLifecycleEvent,
    CaseReported,
    CaseReportedEvent,
    CaseRouted,
    CaseRoutedEvent,
    Explanation,
    JurisdictionRef,
    PartyRef,
    RoutingDecision,
    Sla,
    TransitionData,
)
from contracts.topics import CASE_LIFECYCLE, CASE_REPORTED, CASE_ROUTED
from kit.bus import encode
from kit.db import create_engine
from services.mediation.store import CASES, SV, kit_tables
from tests.infra import AUTH

# Received a minute before the run, so no case is past its limits while it is measured: with
# a fixed date the cases aged into overdue ones and the supervisor's work on every case was
# counted as the handlers' (mediation 344 µs per event on 2026-11-23, 688 on 2026-12-07).
AT = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
TOPICS = {"mediation": (CASE_REPORTED, CASE_ROUTED),
          "notify": (CASE_REPORTED, CASE_ROUTED, CASE_LIFECYCLE)}


def case_events(i: int) -> dict[str, bytes]:
    """One case's reported, routed and first lifecycle events, as the services publish them."""
    case_id = f"BENCH-{i:08d}"
    reported = CaseReportedEvent.wrap(CaseReported(
        case_id=case_id, channel=Channel.HOTLINE_12345, external_id=f"GD-{case_id}",
        received_at=AT, text="楼上漏水，多次沟通无果。", callback_url="https://hotline.invalid/cb",
        reporter=PartyRef(name="王女士", phone_masked="139****5678", phone_hash="a" * 64)),
        source="intake", subject=case_id)
    routed = CaseRoutedEvent.wrap(CaseRouted(
        case_id=case_id, channel=Channel.HOTLINE_12345, external_id=f"GD-{case_id}",
        received_at=AT, routed_at=AT, decision=RoutingDecision(
            category=Category.NEIGHBOR, category_confidence=0.9, risk=Risk.BLUE,
            tier=Tier.VILLAGE, lead_department=Department.VILLAGE_MEDIATION,
            jurisdiction=JurisdictionRef(code="330699001001", name="江滨社区", level="village"),
            sla=Sla(accept_by=AT + timedelta(hours=24), resolve_by=AT + timedelta(days=15)),
            explanation=Explanation(zh="邻里纠纷", en="neighbour dispute"),
            rules_version="bench")), source="router", subject=case_id)
    lifecycle = CaseLifecycleEvent.wrap(CaseLifecycle(
        case_id=case_id, version=1, from_status=None, to_status=Status.REPORTED,
        actor="intake", at=AT, channel=Channel.HOTLINE_12345, external_id=f"GD-{case_id}",
        data=TransitionData()), source="mediation", subject=case_id)
    return {CASE_REPORTED: encode(reported), CASE_ROUTED: encode(routed),
            CASE_LIFECYCLE: encode(lifecycle)}


async def handled(url: str, service: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(
                f"SELECT count(*) FROM {service}_processed_events"))).scalar_one())
    finally:
        await engine.dispose()


async def run(args: argparse.Namespace) -> None:
    infra = await start_infra(args.db, args.partitions)
    try:
        cases = [case_events(i) for i in range(args.cases)]
        topics = TOPICS[args.stage]
        total = args.cases * len(topics)
        base_elapsed = await passthrough(infra, [(b"k", e[CASE_ROUTED]) for e in cases])
        base_rate = args.cases / base_elapsed

        # With --overdue the supervisor looks every half second, not every five, so the
        # time it takes to notice is small beside the time it works.
        extra = {"FQ_SUPERVISION_INTERVAL_SECONDS": "0.5"} if args.overdue else {}
        stages = [start_service(infra, args.stage, FQ_SMS_ENABLED="false",
                                FQ_CONSUMER_MAX_RECORDS=str(args.max_records), **extra)
                  for _ in range(args.processes)]
        if args.stage == "notify":
            async with httpx.AsyncClient(base_url=stages[0].url, headers=AUTH) as client:
                for n in range(2):
                    created = await client.post("/v1/subscriptions", json={
                        "name": f"bench {n}", "url": "https://receiver.invalid/hook",
                        "kinds": ["routed", "lifecycle"]})
                    created.raise_for_status()
        if args.processes > 1:
            await asyncio.sleep(5)  # the consumer group settles after the last one joins
        url = service_database_url(infra, args.stage)
        cpu_start = cpu_seconds(*stages)
        started = time.monotonic()
        for topic in topics:  # each topic filled at once, as a backlog to work through
            await produce(infra.broker.bootstrap, topic,
                          [(f"BENCH-{i:08d}".encode(), e[topic])
                           for i, e in enumerate(cases)])
        show = progress(args.stage, total)
        done = 0
        deadline = started + 900
        while done < total and time.monotonic() < deadline:
            done = await handled(url, args.stage)
            show(done)
            await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
        cpu_per_event = (cpu_seconds(*stages) - cpu_start) / max(done, 1)
        rate = done / elapsed
        report(f"{args.stage} stage, {args.cases} cases ({total} events), {args.db}, "
               f"{args.processes} process(es), {args.partitions} partitions", [
                   ("passthrough (msg/s)", f"{base_rate:,.0f}"),
                   (f"{args.stage} (events/s)", f"{rate:,.0f}"),
                   ("ratio = stage / passthrough", f"{rate / base_rate:.3f}"),
                   (f"{args.stage} CPU per event (µs)", f"{cpu_per_event * 1e6:,.0f}"),
                   ("events handled", f"{done} of {total}"),
               ], {"bench": "consumers", "stage": args.stage, "db": args.db,
                   "cases": args.cases, "events": total, "handled": done,
                   "processes": args.processes, "partitions": args.partitions,
                   "passthrough_per_s": round(base_rate), "events_per_s": round(rate),
                   "ratio": round(rate / base_rate, 3),
                   "cpu_us_per_event": round(cpu_per_event * 1e6)})
        if done < total:
            raise SystemExit(f"only {done} of {total} events handled")
        if args.overdue:
            await supervise_overdue(args, url, stages)
    finally:
        await infra.close()


# Every case's limits 40 days back: acceptance 24 hours and resolution 15 days from then,
# so each case has all six levels due (twice 15 days is 30).
LONG_AGO = AT - timedelta(days=40)


async def supervise_overdue(args: argparse.Namespace, url: str, stages: list[Any]) -> None:
    """Make every case overdue at once and measure the supervisor working through them."""
    engine = create_engine(url)

    async def count(query: Any) -> int:
        async with engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    try:
        await drained(count, time.monotonic() + 300)  # the stage's own events first
        expected = args.cases * 6
        cpu_start = cpu_seconds(*stages)
        started = time.monotonic()
        async with engine.begin() as conn:
            await conn.execute(update(CASES).values(
                received_at=LONG_AGO, limits_from=LONG_AGO, accept_from=None,
                accept_by=LONG_AGO + timedelta(hours=24),
                resolve_by=LONG_AGO + timedelta(days=15), acceptance_supervised=None,
                resolution_supervised=None,
                supervision_due_at=LONG_AGO + timedelta(hours=24) * 0.8))
        show = progress("supervision levels", expected)
        recorded = 0
        deadline = started + 900
        while recorded < expected and time.monotonic() < deadline:
            recorded = await count(select(func.count()).select_from(SV.case_id.table))
            show(recorded)
            await asyncio.sleep(0.2)
        supervised_in = time.monotonic() - started
        cpu_supervised = cpu_seconds(*stages) - cpu_start
        await drained(count, deadline)
        cpu_published = cpu_seconds(*stages) - cpu_start
        per_case = cpu_supervised / args.cases
        published_per_case = cpu_published / args.cases
        report(f"supervisor, {args.cases} cases all overdue (6 levels each), {args.db}", [
            ("supervised (cases/s)", f"{args.cases / supervised_in:,.0f}"),
            ("CPU per case, supervising (µs)", f"{per_case * 1e6:,.0f}"),
            ("CPU per case, and publishing (µs)", f"{published_per_case * 1e6:,.0f}"),
            ("levels recorded", f"{recorded} of {expected}"),
        ], {"bench": "supervisor_overdue", "db": args.db, "cases": args.cases,
            "levels": recorded, "cases_per_s": round(args.cases / supervised_in),
            "cpu_us_per_case": round(per_case * 1e6),
            "cpu_us_per_case_published": round(published_per_case * 1e6)})
        if recorded < expected:
            raise SystemExit(f"only {recorded} of {expected} levels recorded")
    finally:
        await engine.dispose()


async def drained(count: Any, deadline: float) -> None:
    """Until the relay has published every outbox row (or the deadline)."""
    while time.monotonic() < deadline:
        if not await count(select(func.count()).select_from(kit_tables.outbox)):
            return
        await asyncio.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage", choices=sorted(TOPICS), default="mediation")
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--processes", type=int, default=1,
                        help="processes of the stage, in one consumer group")
    parser.add_argument("--max-records", type=int, default=500)
    parser.add_argument("--overdue", action="store_true",
                        help="mediation: then make every case overdue and measure the "
                        "supervisor")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
