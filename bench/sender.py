"""Notify's sender, one process and several: N webhook deliveries already queued to R
subscriptions (a backlog, as after a burst of cases) → every one delivered to a receiver on
loopback, with 1, 2, … notify processes sharing the receivers (kit.leader.run_sharing).
Deliveries per second, and the notify processes' CPU per delivery.

Baseline in the same run: a bare httpx client posting the same bodies to the same receiver
with as many requests in flight as one sender may have (delivery_concurrency), nothing else.
Prints `ratio = sender / bare client` and each process count against one process.

    uv run python -m bench.sender --deliveries 6000 --processes 1 2
"""

from __future__ import annotations

import argparse
import asyncio
import time
from contextlib import ExitStack

import httpx
from sqlalchemy import func, select

from bench.common import (
    cpu_seconds,
    progress,
    report,
    service_database_url,
    start_bare,
    start_infra,
)
from bench.consumers import case_events
from contracts.topics import CASE_ROUTED
from kit.settings import Settings
from services.notify.handlers import pending_delivery
from services.notify.store import SUCCEEDED, WEBHOOK, deliveries
from tests.infra import (
    AUTH,
    ServiceProcess,
    free_port,
    insert_rows,
    read_rows,
    service_processes,
)

RECEIVERS = 32
IDLE_SECONDS = 5.0


async def bare_client(url: str, bodies: list[bytes], in_flight: int) -> float:
    """Seconds for a bare httpx client to post every body, `in_flight` at a time."""
    queue = list(enumerate(bodies))
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        async def worker() -> None:
            while queue:
                n, body = queue.pop()
                r = await client.post(f"{url}/hook/{n % RECEIVERS}", content=body,
                                      headers={"content-type": "application/json"})
                r.raise_for_status()
        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return time.monotonic() - started


async def queue_deliveries(db_url: str, subscriptions: list[str], bodies: list[bytes],
                           batch: str) -> None:
    rows = [pending_delivery(WEBHOOK, subscriptions[n % len(subscriptions)],
                             f"{batch}-{n}", f"BENCH-{n:08d}", "case.routed", body)
            for n, body in enumerate(bodies)]
    await insert_rows(db_url, deliveries, rows)


async def delivered(db_url: str) -> int:
    rows = await read_rows(db_url, select(func.count()).where(deliveries.c.status == SUCCEEDED))
    return int(rows[0][0])


async def wait_delivered(db_url: str, total: int, label: str) -> None:
    show = progress(label, total)
    deadline = time.monotonic() + 900
    done = 0
    while done < total and time.monotonic() < deadline:
        done = await delivered(db_url)
        show(done)
        await asyncio.sleep(0.1)
    if done < total:
        raise SystemExit(f"only {done} of {total} deliveries sent")


async def run(args: argparse.Namespace) -> None:
    infra = await start_infra(args.db)
    receiver, receiver_url = start_bare("bench.bare_app:receiver", "--timeout-keep-alive", "60")
    try:
        bodies = [case_events(n)[CASE_ROUTED] for n in range(args.deliveries)]
        in_flight = Settings(service="notify").delivery_concurrency
        await bare_client(receiver_url, bodies[:500], in_flight)  # warm-up
        bare_rate = args.deliveries / await bare_client(receiver_url, bodies, in_flight)
        db_url = service_database_url(infra, "notify")
        subscriptions: list[str] = []
        sent_so_far = 0
        rows: list[tuple[str, str]] = [("bare httpx client (posts/s)", f"{bare_rate:,.0f}")]
        figures: dict[str, object] = {"bench": "sender", "db": args.db,
                                      "deliveries": args.deliveries, "receivers": RECEIVERS,
                                      "bare_per_s": round(bare_rate)}
        one_process_rate = 0.0
        for count in args.processes:
            with ExitStack() as stack:
                senders: list[ServiceProcess] = [stack.enter_context(service_processes(
                    {"notify": free_port()}, bootstrap=infra.broker.bootstrap,
                    database_url=infra.database_url, var=infra.workdir,
                    env={"FQ_LOG_LEVEL": "WARNING", "FQ_SMS_ENABLED": "false"}))["notify"]
                    for _ in range(count)]
                if not subscriptions:
                    async with httpx.AsyncClient(base_url=senders[0].url, headers=AUTH) as c:
                        for n in range(RECEIVERS):
                            r = await c.post("/v1/subscriptions", json={
                                "name": f"bench {n}", "url": f"{receiver_url}/hook/{n}",
                                "jurisdictions": ["999999999999"]})
                            r.raise_for_status()
                            subscriptions.append(r.json()["id"])
                await asyncio.sleep(4)  # the processes settle their shares
                warm = bodies[:200]
                await queue_deliveries(db_url, subscriptions, warm, f"warm{count}")
                sent_so_far += len(warm)
                await wait_delivered(db_url, sent_so_far, f"warm-up, {count} process(es)")
                # What the processes spend with nothing to send (consumers polling, the relay,
                # the lag exporter), to tell the sending apart.
                idle_start, idle_cpu_start = time.monotonic(), cpu_seconds(*senders)
                await asyncio.sleep(IDLE_SECONDS)
                idle = (cpu_seconds(*senders) - idle_cpu_start) / (time.monotonic() - idle_start)
                cpu_start = cpu_seconds(*senders)
                started = time.monotonic()
                await queue_deliveries(db_url, subscriptions, bodies, f"run{count}")
                sent_so_far += len(bodies)
                await wait_delivered(db_url, sent_so_far, f"sender, {count} process(es)")
                elapsed = time.monotonic() - started
                cpu_used = cpu_seconds(*senders) - cpu_start
                cpu = cpu_used / args.deliveries
                net = max(0.0, cpu_used - idle * elapsed) / args.deliveries
            rate = args.deliveries / elapsed
            one_process_rate = one_process_rate or rate
            rows += [(f"{count} process(es): deliveries/s", f"{rate:,.0f}"),
                     (f"{count} process(es): ratio to the bare client", f"{rate / bare_rate:.3f}"),
                     (f"{count} process(es): ratio to the first count",
                      f"{rate / one_process_rate:.2f}"),
                     (f"{count} process(es): CPU per delivery (µs)", f"{cpu * 1e6:,.0f}"),
                     (f"{count} process(es): idle CPU (cores)", f"{idle:.3f}"),
                     (f"{count} process(es): CPU per delivery, less idle (µs)",
                      f"{net * 1e6:,.0f}")]
            figures[f"p{count}"] = {"per_s": round(rate), "ratio_bare": round(rate / bare_rate, 3),
                                    "ratio_first": round(rate / one_process_rate, 2),
                                    "cpu_us_per_delivery": round(cpu * 1e6),
                                    "idle_cores": round(idle, 3),
                                    "net_cpu_us_per_delivery": round(net * 1e6)}
        report(f"notify sender, {args.deliveries} deliveries to {RECEIVERS} receivers, {args.db}",
               rows, figures)
    finally:
        receiver.terminate()
        receiver.wait(10)
        await infra.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=6000)
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2],
                        help="notify process counts to measure, in order (SQLite: 1 only)")
    args = parser.parse_args()
    if args.db == "sqlite" and args.processes != [1]:
        parser.error("on SQLite one notify process sends (docs/deploy.md): --processes 1")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
