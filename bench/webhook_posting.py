"""The sender's HTTP client alone: CPU per webhook post with httpx (the stack's client, as the
sender used it: a streamed POST, not following redirects) and with the sender's
`WebhookPoster` (aiohttp), in the same run, against the same bare receiver running in a
process of its own on loopback, with as many posts in flight as the sender allows one
receiver (8). The CPU is this process's (user + system), so the receiver's is not counted.

    uv run python -m bench.webhook_posting --posts 5000 [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import uvicorn

from bench.common import report
from services.notify.domain import message_id, webhook_headers
from services.notify.posting import WebhookPoster
from tests.infra import free_port

BODY = orjson.dumps({"type": "case.received", "data": {"case_id": "C" * 12,
                                                        "text": "楼下烧烤店油烟和噪音扰民" * 4}})
SECRET = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


async def receiver(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def serve_receiver(port: int) -> None:
    uvicorn.run(receiver, host="127.0.0.1", port=port, log_level="warning",
                access_log=False, http="httptools", loop="uvloop", timeout_keep_alive=60)


def headers(i: int) -> dict[str, str]:
    return webhook_headers((SECRET,), message_id(f"ev{i}"), int(time.time()), BODY)


async def timed(post: Callable[[int], Awaitable[int]], posts: int, in_flight: int
                ) -> tuple[float, float]:
    """(CPU µs per post, posts per second) for `posts` posts, `in_flight` at a time."""
    queue = iter(range(posts))

    async def worker() -> None:
        for i in queue:
            assert 200 <= await post(i) < 300

    for i in range(50):  # warm the connections
        await post(i)
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu * 1e6 / posts, posts / wall


async def with_httpx(url: str, posts: int, in_flight: int) -> tuple[float, float]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0),
                                 limits=httpx.Limits(max_connections=50),
                                 follow_redirects=False) as client:
        async def post(i: int) -> int:
            async with client.stream("POST", url, content=BODY, headers=headers(i)) as r:
                return r.status_code
        return await timed(post, posts, in_flight)


async def with_poster(url: str, posts: int, in_flight: int) -> tuple[float, float]:
    async with WebhookPoster(5.0, 50) as poster:
        return await timed(lambda i: poster.post(url, BODY, headers(i)), posts, in_flight)


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(target=serve_receiver, args=(port,))
    server.start()
    url = f"http://127.0.0.1:{port}/hook"
    try:
        for _ in range(200):
            try:
                async with httpx.AsyncClient() as probe:
                    await probe.post(url, content=b"{}")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
        figures: dict[str, list[tuple[float, float]]] = {"httpx": [], "aiohttp": []}
        for _ in range(args.rounds):  # alternate, so a change in the machine's load hits both
            figures["httpx"].append(await with_httpx(url, args.posts, args.in_flight))
            figures["aiohttp"].append(await with_poster(url, args.posts, args.in_flight))
    finally:
        server.terminate()
        server.join()
    best = {name: min(runs) for name, runs in figures.items()}
    rows = [(f"{name} CPU µs per post (rounds)",
             ", ".join(f"{cpu:.0f} ({rate:.0f}/s)" for cpu, rate in runs))
            for name, runs in figures.items()]
    rows.append(("aiohttp / httpx CPU per post (best rounds)",
                 f"{best['aiohttp'][0] / best['httpx'][0]:.2f}"))
    rows.append(("load average", " ".join(f"{x:.2f}" for x in os.getloadavg())))
    report(f"Webhook posting, {args.posts} posts x {args.rounds} rounds, "
           f"{args.in_flight} in flight", rows,
           {"bench": "webhook_posting", "posts": args.posts, "in_flight": args.in_flight,
            "httpx_cpu_us_per_post": [round(c) for c, _ in figures["httpx"]],
            "aiohttp_cpu_us_per_post": [round(c) for c, _ in figures["aiohttp"]],
            "httpx_posts_per_s": [round(r) for _, r in figures["httpx"]],
            "aiohttp_posts_per_s": [round(r) for _, r in figures["aiohttp"]]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=8)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
