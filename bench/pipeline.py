"""The whole pipeline: cases posted to intake → routed → stored in mediation → delivered to
a webhook receiver. Two phases, both on the four services running as separate processes:

1. a fixed offered load (default 500 cases/s of single posts): end-to-end latency p50/p99
   from the post to routed (the routed event on its topic) and to the webhook's arrival;
2. saturation (batch posts as fast as intake takes them): sustained cases/s, counted when
   the last webhook of the run arrived and every case is stored in mediation.

    uv run python -m bench.pipeline --db postgres --rate 500 --seconds 20 --cases 20000
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import orjson
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import (
    collect,
    cpu_seconds,
    percentile,
    progress,
    report,
    service_database_url,
    start_infra,
    start_service,
)
from bench.http_load import HttpConnections
from contracts.topics import CASE_REPORTED, CASE_ROUTED
from tests.infra import AUTH, free_port

TEXTS = [
    "楼下烧烤店油烟和噪音扰民，晚上十二点后还在营业。",
    "快递公司拖欠我两个月工资共计9600元，一直推脱。",
    "物业公司未经业主同意把小区绿地改成收费停车位。",
    "两车追尾，无人员受伤，双方对责任认定有异议。",
    "在培训机构交了一万多元学费，机构倒闭了不给退费。",
]


# The orders were received a minute before the run (Beijing time, as the hotline sends them):
# with a fixed date every case was overdue once it aged, and mediation's supervisor and
# notify worked on each one (supervision levels and their events) as no county's would.
RECEIVED_AT = (datetime.now(UTC) - timedelta(minutes=1)).astimezone(
    timezone(timedelta(hours=8))).isoformat(timespec="seconds")


class Receiver:
    """A bare ASGI webhook receiver: notes when each case's notification arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            self.arrived.setdefault(orjson.loads(body)["data"]["case_id"], time.time())
        except (orjson.JSONDecodeError, KeyError, TypeError):
            pass
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def order(run: str, i: int) -> dict[str, Any]:
    return {"order_no": f"P{run}-{i}", "content": TEXTS[i % len(TEXTS)],
            "received_at": RECEIVED_AT, "category": None,
            "address": "城关街道"}


async def offered_load(intake: HttpConnections, rate: int, seconds: int, run: str
                       ) -> dict[str, float]:
    """Post single work orders at `rate` per second, on schedule whatever the answers take
    (a post waiting for a free connection counts that wait); returns case id → post time."""
    posted: dict[str, float] = {}
    total = rate * seconds
    show = progress(f"offered {rate}/s", total)

    async def one(i: int) -> None:
        sent = time.time()
        status, body = await intake.post_json("/v1/intake/hotline_12345",
                                              orjson.dumps(order(run, i)))
        if status == 202:
            posted[orjson.loads(body)["case_id"]] = sent

    start = time.monotonic()
    tasks = []
    for i in range(total):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
        if i % rate == 0:
            show(i)
    await asyncio.gather(*tasks)
    show(total)
    return posted


async def saturate(intake: HttpConnections, cases: int, batch: int, run: str
                   ) -> tuple[float, list[str]]:
    """Post batches as fast as intake answers them (as many in flight as `intake` has
    connections); returns when it started and the accepted case ids."""
    show = progress("saturation posts", cases)
    case_ids: list[str] = []
    started = time.time()

    async def one(first: int) -> None:
        items = [order(run, i) for i in range(first, min(first + batch, cases))]
        status, body = await intake.post_json("/v1/intake/hotline_12345/batch",
                                              orjson.dumps({"items": items}))
        if status != 200:
            raise RuntimeError(f"batch post answered {status}: {body[:300]!r}")
        case_ids.extend(x["case_id"] for x in orjson.loads(body)["results"] if x["case_id"])
        show(len(case_ids))

    await asyncio.gather(*(one(first) for first in range(0, cases, batch)))
    return started, case_ids


async def wait_for(predicate: Any, label: str, total: int, within: float) -> bool:
    show = progress(label, total)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        done = predicate()
        show(done)
        if done >= total:
            return True
        await asyncio.sleep(0.2)
    return False


async def warm_up(intake: HttpConnections, bootstrap: str) -> None:
    """One case through to routed before measuring: consumer groups that are still joining
    would otherwise hold the first seconds of cases and make the p99."""
    status, body = await intake.post_json("/v1/intake/hotline_12345",
                                          orjson.dumps(order(f"warm{uuid.uuid4().hex[:6]}", 0)))
    if status != 202:
        raise RuntimeError(f"warm-up post answered {status}: {body[:300]!r}")
    case_id = orjson.loads(body)["case_id"].encode()
    if not await collect(bootstrap, CASE_ROUTED, 1, 120, accept=lambda v: case_id in v):
        raise RuntimeError("the warm-up case was not routed within 120 s")


async def routing_only(args: argparse.Namespace) -> None:
    """Intake and router alone at the offered load: the post → routed latency without
    mediation and notify competing for the cores."""
    infra = await start_infra(args.db, args.partitions)
    try:
        env = {"FQ_CONSUMER_MAX_RECORDS": "2000"}
        intake = HttpConnections(start_service(infra, "intake", **env).url, 128, AUTH)
        start_service(infra, "router", **env)
        try:
            await warm_up(intake, infra.broker.bootstrap)
            posted = await offered_load(intake, args.rate, args.seconds, uuid.uuid4().hex[:6])
        finally:
            await intake.close()
        routed_events = [(orjson.loads(v), ts / 1000) for v, ts in await collect(
            infra.broker.bootstrap, CASE_ROUTED, len(posted), 120,
            progress("routed", len(posted)))]
        routed = {event["subject"]: ts for event, ts in routed_events}
        # Each hop, from the records' producer timestamps and the router's routed_at (the
        # start of the batch that routed the case): where the time of a slow case goes.
        reported = {orjson.loads(v)["subject"]: ts / 1000 for v, ts in await collect(
            infra.broker.bootstrap, CASE_REPORTED, len(posted) + 1, 30)}
        routed_at = {event["subject"]: datetime.fromisoformat(event["data"]["routed_at"])
                     .timestamp() for event, _ in routed_events}
        to_routed = [routed[c] - t for c, t in posted.items() if c in routed]
        p50, p99 = percentile(to_routed, 50) * 1000, percentile(to_routed, 99) * 1000
        hops = {
            "post → reported on the topic (intake: group commit, relay)":
                [reported[c] - t for c, t in posted.items() if c in reported],
            "reported → router's batch starts (fetch, batch before it)":
                [routed_at[c] - reported[c] for c in posted if c in reported and c in routed_at],
            "router's batch starts → routed on the topic (route, commit, relay)":
                [routed[c] - routed_at[c] for c in posted if c in routed],
        }
        rows = [(f"  {hop} p50 / p99 (ms)",
                 f"{percentile(v, 50) * 1000:,.0f} / {percentile(v, 99) * 1000:,.0f}")
                for hop, v in hops.items() if v]
        report(f"intake and router only, {args.db}, {args.partitions} partitions", [
            ("offered load (cases/s)", f"{args.rate} for {args.seconds}s"),
            ("post → routed p50 / p99 (ms)", f"{p50:,.0f} / {p99:,.0f}"),
            *rows,
            ("offered posts routed", f"{len(to_routed)} of {len(posted)}"),
        ], {"bench": "pipeline", "stages": "intake,router", "db": args.db, "rate": args.rate,
            "routed_p50_ms": round(p50), "routed_p99_ms": round(p99),
            "hops_p99_ms": [round(percentile(v, 99) * 1000) for v in hops.values() if v],
            "offered_accepted": len(posted), "offered_routed": len(to_routed)})
    finally:
        await infra.close()


async def run(args: argparse.Namespace) -> None:
    infra = await start_infra(args.db, args.partitions)
    receiver = Receiver()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(receiver, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    server_task = asyncio.create_task(server.serve())
    try:
        env = {"FQ_SMS_ENABLED": "false", "FQ_CONSUMER_MAX_RECORDS": "2000"}
        if args.webhooks_in_flight:
            env["FQ_DELIVERY_MAX_IN_FLIGHT_PER_RECEIVER"] = str(args.webhooks_in_flight)
            env["FQ_DELIVERY_CONCURRENCY"] = str(max(50, args.webhooks_in_flight))
        services = {name: start_service(infra, name, **env)
                    for name in ("intake", "router", "mediation", "notify")}
        urls = {name: service.url for name, service in services.items()}
        async with httpx.AsyncClient(headers=AUTH, timeout=30) as client:
            sub = await client.post(f"{urls['notify']}/v1/subscriptions", json={
                "name": "bench", "url": f"http://127.0.0.1:{port}/hook", "kinds": ["routed"]})
            sub.raise_for_status()
        run_id = uuid.uuid4().hex[:6]
        singles = HttpConnections(urls["intake"], 128, AUTH)
        cpu_before = {name: cpu_seconds(service) for name, service in services.items()}
        batches = HttpConnections(urls["intake"], 4, AUTH)
        try:
            await warm_up(singles, infra.broker.bootstrap)
            posting = time.monotonic()
            posted = await offered_load(singles, args.rate, args.seconds, run_id)
            achieved = len(posted) / (time.monotonic() - posting)
            await wait_for(lambda: sum(c in receiver.arrived for c in posted),
                           "webhooks (offered)", len(posted), 900)
            routed = {orjson.loads(v)["subject"]: ts / 1000 for v, ts in await collect(
                infra.broker.bootstrap, CASE_ROUTED, len(posted), 60)}
            to_routed = [routed[c] - t for c, t in posted.items() if c in routed]
            to_webhook = [receiver.arrived[c] - t for c, t in posted.items()
                          if c in receiver.arrived]

            started, batch_ids = await saturate(batches, args.cases, args.batch, run_id + "s")
            await wait_for(lambda: sum(c in receiver.arrived for c in batch_ids),
                           "webhooks (saturation)", len(batch_ids), 600)
            delivered = [receiver.arrived[c] for c in batch_ids if c in receiver.arrived]
            # Where the CPU of a case goes, service by service, over both phases.
            cases = len(to_webhook) + len(delivered)
            cpu_ms = {name: (cpu_seconds(service) - cpu_before[name]) * 1000 / max(1, cases)
                      for name, service in services.items()}
        finally:
            await singles.close()
            await batches.close()
        engine = create_async_engine(service_database_url(infra, "mediation"))
        async with engine.connect() as conn:
            stored = (await conn.execute(text(
                "SELECT count(*) FROM mediation_cases WHERE status = 'routed'"))).scalar_one()
        await engine.dispose()
        # Counted on what arrived: cases still on their way when the wait ended do not count.
        sustained = len(delivered) / (max(delivered) - started)
        ms = 1000
        report(f"pipeline, {args.db}, {args.partitions} partitions", [
            ("offered load (cases/s)", f"{args.rate} for {args.seconds}s"),
            ("accepted while offered (cases/s)", f"{achieved:,.0f}"),
            ("post → routed p50 / p99 (ms)",
             f"{percentile(to_routed, 50) * ms:,.0f} / {percentile(to_routed, 99) * ms:,.0f}"),
            ("post → webhook p50 / p99 (ms)",
             f"{percentile(to_webhook, 50) * ms:,.0f} / {percentile(to_webhook, 99) * ms:,.0f}"),
            ("offered posts routed / webhooks",
             f"{len(to_routed)} / {len(to_webhook)} of {len(posted)}"),
            ("saturation: cases", f"{len(batch_ids)} in batches of {args.batch}, "
             f"{len(delivered)} delivered"),
            ("saturation: sustained (cases/s)", f"{sustained:,.0f}"),
            ("cases stored in mediation", f"{stored}"),
            ("webhooks received", f"{len(receiver.arrived)}"),
            ("CPU ms per case: " + ", ".join(cpu_ms), " / ".join(f"{v:.2f}"
                                                               for v in cpu_ms.values())),
        ], {"bench": "pipeline", "db": args.db, "rate": args.rate,
            "accepted_per_s": round(achieved),
            "routed_p50_ms": round(percentile(to_routed, 50) * ms),
            "routed_p99_ms": round(percentile(to_routed, 99) * ms),
            "webhook_p50_ms": round(percentile(to_webhook, 50) * ms),
            "webhook_p99_ms": round(percentile(to_webhook, 99) * ms),
            "offered_accepted": len(posted), "offered_routed": len(to_routed),
            "offered_webhooks": len(to_webhook),
            "saturation_cases": len(batch_ids), "saturation_delivered": len(delivered),
            "sustained_per_s": round(sustained),
            "stored": stored, "webhooks": len(receiver.arrived),
            "cpu_ms_per_case": {name: round(v, 2) for name, v in cpu_ms.items()}})
    finally:
        server.should_exit = True
        await server_task
        await infra.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--cases", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--webhooks-in-flight", type=int, default=0,
                        help="notify's cap of deliveries in flight to one receiver "
                        "(default: the service's own, 8)")
    parser.add_argument("--routing-only", action="store_true",
                        help="only intake and router, only the offered load: the post → "
                        "routed latency without the later stages")
    args = parser.parse_args()
    asyncio.run(routing_only(args) if args.routing_only else run(args))


if __name__ == "__main__":
    main()
