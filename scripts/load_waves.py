"""Post hotline orders to a running platform in waves with pauses, as a new user trying
`make run` would, optionally SIGKILLing the router while they flow; then check that every
accepted order was routed exactly once.

    uv run python scripts/load_waves.py --waves 3 --per-wave 400 --pause 8 --kill-router 3

It reads the API key from var/dev-api-key (or FQ_DEV_API_KEY) and talks to the default
ports (intake 8001, router 8002, mediation 8003). Exit status 0 when every order was routed
exactly once within --within seconds of the last wave."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import time
import uuid
from pathlib import Path

import httpx

INTAKE, ROUTER, MEDIATION = "http://127.0.0.1:8001", "http://127.0.0.1:8002", \
    "http://127.0.0.1:8003"
TEXTS = [
    "邻居因为占用停车位与我发生争执，已经吵了好几次。",
    "小区楼下烧烤摊油烟太大，晚上十一点还很吵。",
    "公司拖欠我三个月工资共一万二千元，老板不接电话。",
    "装修公司收了定金不开工，要求退款被拒绝。",
    "村里土地承包到期后被别人占着种，村委会不管。",
]


def api_key() -> str:
    return os.environ.get("FQ_DEV_API_KEY") or Path("var/dev-api-key").read_text().strip()


async def post_wave(client: httpx.AsyncClient, run: str, wave: int, count: int,
                    rate: float) -> list[str]:
    """Post `count` orders at about `rate` per second; returns the accepted order numbers."""
    accepted: list[str] = []

    async def one(i: int) -> None:
        order_no = f"GD{run}-{wave}-{i:05d}"
        for _ in range(30):  # a client retries through a moment of unavailability
            try:
                r = await client.post(f"{INTAKE}/v1/intake/hotline_12345", json={
                    "order_no": order_no, "content": random.choice(TEXTS),
                    "received_at": "2026-12-07T09:30:00+08:00", "caller_name": "市民",
                    "address": "城关街道"})
                if r.status_code in (200, 202):
                    accepted.append(order_no)
                    return
                if r.status_code < 500 and r.status_code != 429:
                    print(f"refused {order_no}: {r.status_code} {r.text[:200]}", flush=True)
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)

    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*tasks)
    return accepted


async def kill_router(client: httpx.AsyncClient, after: float) -> int | None:
    await asyncio.sleep(after)
    try:
        pid = int((await client.get(f"{ROUTER}/healthz")).json()["pid"])
    except (httpx.HTTPError, KeyError, ValueError):
        return None
    os.kill(pid, signal.SIGKILL)
    print(f"  SIGKILL router pid {pid}", flush=True)
    return pid


async def routed_rounds(client: httpx.AsyncClient, order_no: str) -> int | None:
    """How many 'routed' steps the order's case has, or None when it is not there yet."""
    r = await client.get(f"{MEDIATION}/v1/cases", params={"external_id": order_no})
    items = r.json().get("items", []) if r.status_code == 200 else []
    if not items:
        return None
    case = (await client.get(f"{MEDIATION}/v1/cases/{items[0]['case_id']}")).json()
    return sum(1 for h in case["history"] if h["to_status"] == "routed")


async def main(args: argparse.Namespace) -> int:
    run = uuid.uuid4().hex[:6].upper()
    headers = {"Authorization": f"Bearer {api_key()}"}
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(headers=headers, timeout=15, limits=limits) as client:
        accepted: list[str] = []
        for wave in range(args.waves):
            t = time.monotonic()
            kill = wave < args.kill_router
            got, _ = await asyncio.gather(
                post_wave(client, run, wave, args.per_wave, args.rate),
                kill_router(client, after=args.per_wave / args.rate / 2) if kill
                else asyncio.sleep(0))
            accepted += got
            print(f"wave {wave + 1}: {len(got)}/{args.per_wave} accepted in "
                  f"{time.monotonic() - t:.1f}s", flush=True)
            if wave < args.waves - 1:
                await asyncio.sleep(args.pause)
        print(f"{len(accepted)} accepted; waiting for every one to be routed", flush=True)
        deadline = time.monotonic() + args.within
        started = time.monotonic()
        pending = set(accepted)
        doubled: set[str] = set()
        while pending and time.monotonic() < deadline:
            for order_no in list(pending):
                rounds = await routed_rounds(client, order_no)
                if rounds is not None and rounds >= 1:
                    pending.discard(order_no)
                    if rounds > 1:
                        doubled.add(order_no)
            if pending:
                await asyncio.sleep(2)
        print(f"routed: {len(accepted) - len(pending)}/{len(accepted)} within "
              f"{time.monotonic() - started:.0f}s of the last wave; not routed: {len(pending)}; "
              f"routed more than once: {len(doubled)}", flush=True)
        for order_no in sorted(pending)[:10]:
            print(f"  not routed: {order_no}")
        return 0 if not pending and not doubled and len(accepted) == args.waves * args.per_wave \
            else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waves", type=int, default=3)
    parser.add_argument("--per-wave", type=int, default=400)
    parser.add_argument("--pause", type=float, default=8.0, help="seconds between waves")
    parser.add_argument("--rate", type=float, default=50.0, help="orders per second")
    parser.add_argument("--kill-router", type=int, default=0,
                        help="SIGKILL the router in the middle of this many waves")
    parser.add_argument("--within", type=float, default=120.0)
    sys.exit(asyncio.run(main(parser.parse_args())))
