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
from typing import Any

import httpx
import orjson
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import collect, percentile, progress, report, start_infra, start_service
from contracts.topics import CASE_ROUTED
from tests.infra import AUTH, free_port

TEXTS = [
    "楼下烧烤店油烟和噪音扰民，晚上十二点后还在营业。",
    "快递公司拖欠我两个月工资共计9600元，一直推脱。",
    "物业公司未经业主同意把小区绿地改成收费停车位。",
    "两车追尾，无人员受伤，双方对责任认定有异议。",
    "在培训机构交了一万多元学费，机构倒闭了不给退费。",
]


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
            "received_at": "2026-11-23T09:30:00+08:00", "category": None,
            "address": "城关街道"}


async def offered_load(client: httpx.AsyncClient, intake: str, rate: int, seconds: int,
                       run: str) -> dict[str, float]:
    """Post single work orders at `rate` per second; returns case id → post time."""
    posted: dict[str, float] = {}
    total = rate * seconds
    show = progress(f"offered {rate}/s", total)
    limit = asyncio.Semaphore(256)

    async def one(i: int) -> None:
        async with limit:
            sent = time.time()
            r = await client.post(f"{intake}/v1/intake/hotline_12345", json=order(run, i))
            if r.status_code == 202:
                posted[r.json()["case_id"]] = sent

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


async def saturate(client: httpx.AsyncClient, intake: str, cases: int, batch: int,
                   run: str) -> tuple[float, list[str]]:
    show = progress("saturation posts", cases)
    case_ids: list[str] = []
    started = time.time()
    limit = asyncio.Semaphore(4)

    async def one(first: int) -> None:
        async with limit:
            items = [order(run, i) for i in range(first, min(first + batch, cases))]
            r = await client.post(f"{intake}/v1/intake/hotline_12345/batch",
                                  json={"items": items}, timeout=120)
            r.raise_for_status()
            case_ids.extend(x["case_id"] for x in r.json()["results"] if x["case_id"])
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


async def run(args: argparse.Namespace) -> None:
    infra = await start_infra(args.db, args.partitions)
    receiver = Receiver()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(receiver, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    server_task = asyncio.create_task(server.serve())
    try:
        env = {"FQ_SMS_ENABLED": "false", "FQ_CONSUMER_MAX_RECORDS": "2000"}
        urls = {name: start_service(infra, name, **env)
                for name in ("intake", "router", "mediation", "notify")}
        async with httpx.AsyncClient(headers=AUTH, timeout=30,
                                     limits=httpx.Limits(max_connections=256)) as client:
            sub = await client.post(f"{urls['notify']}/v1/subscriptions", json={
                "name": "bench", "url": f"http://127.0.0.1:{port}/hook", "kinds": ["routed"]})
            sub.raise_for_status()
            run_id = uuid.uuid4().hex[:6]

            posted = await offered_load(client, urls["intake"], args.rate, args.seconds,
                                        run_id)
            await wait_for(lambda: sum(c in receiver.arrived for c in posted),
                           "webhooks (offered)", len(posted), 120)
            routed = {orjson.loads(v)["subject"]: ts / 1000 for v, ts in await collect(
                infra.broker.bootstrap, CASE_ROUTED, len(posted), 60)}
            to_routed = [routed[c] - t for c, t in posted.items() if c in routed]
            to_webhook = [receiver.arrived[c] - t for c, t in posted.items()
                          if c in receiver.arrived]

            started, batch_ids = await saturate(client, urls["intake"], args.cases,
                                                args.batch, run_id + "s")
            await wait_for(lambda: sum(c in receiver.arrived for c in batch_ids),
                           "webhooks (saturation)", len(batch_ids), 600)
            last = max(receiver.arrived[c] for c in batch_ids if c in receiver.arrived)
        engine = create_async_engine(infra.database_url.replace(
            "bench.db", "mediation.db") if infra.database_url.startswith("sqlite")
            else infra.database_url)
        async with engine.connect() as conn:
            stored = (await conn.execute(text(
                "SELECT count(*) FROM mediation_cases WHERE status = 'routed'"))).scalar_one()
        await engine.dispose()
        sustained = len(batch_ids) / (last - started)
        ms = 1000
        report(f"pipeline, {args.db}, {args.partitions} partitions", [
            ("offered load (cases/s)", f"{args.rate} for {args.seconds}s"),
            ("post → routed p50 / p99 (ms)",
             f"{percentile(to_routed, 50) * ms:,.0f} / {percentile(to_routed, 99) * ms:,.0f}"),
            ("post → webhook p50 / p99 (ms)",
             f"{percentile(to_webhook, 50) * ms:,.0f} / {percentile(to_webhook, 99) * ms:,.0f}"),
            ("saturation: cases", f"{len(batch_ids)} in batches of {args.batch}"),
            ("saturation: sustained (cases/s)", f"{sustained:,.0f}"),
            ("cases stored in mediation", f"{stored}"),
            ("webhooks received", f"{len(receiver.arrived)}"),
        ], {"bench": "pipeline", "db": args.db, "rate": args.rate,
            "routed_p50_ms": round(percentile(to_routed, 50) * ms),
            "routed_p99_ms": round(percentile(to_routed, 99) * ms),
            "webhook_p50_ms": round(percentile(to_webhook, 50) * ms),
            "webhook_p99_ms": round(percentile(to_webhook, 99) * ms),
            "saturation_cases": len(batch_ids), "sustained_per_s": round(sustained),
            "stored": stored, "webhooks": len(receiver.arrived)})
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
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
