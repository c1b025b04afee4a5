"""Intake's single-post endpoint against a bare FastAPI endpoint on the same server stack,
measured in the same run with the same load generator (wrk, from Debian's packages).

    uv run python -m bench.intake_http --db postgres --seconds 10 --connections 32
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import time
import uuid

import orjson

from bench.common import (
    ROOT,
    cpu_seconds,
    progress,
    report,
    start_bare,
    start_infra,
    start_service,
)
from tests.infra import DEV_KEY


async def wrk(label: str, url: str, seconds: int, connections: int) -> dict[str, float]:
    """Run wrk against `url` for `seconds`, with a progress bar of the seconds gone."""
    env = {**os.environ, "FQ_BENCH_KEY": DEV_KEY, "FQ_BENCH_RUN": uuid.uuid4().hex[:8]}
    process = await asyncio.create_subprocess_exec(
        "wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
        "-s", str(ROOT / "bench" / "post_orders.lua"), url,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    show = progress(label, seconds)
    started = time.monotonic()
    finished = asyncio.ensure_future(process.communicate())
    while not finished.done():
        show(min(seconds, int(time.monotonic() - started)))
        await asyncio.wait([finished], timeout=0.5)
    show(seconds)
    stdout, stderr = finished.result()
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed: {stderr.decode(errors='replace')}")
    out = stdout.decode()
    match = re.search(r"^JSON (.*)$", out, re.MULTILINE)
    if not match:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    result: dict[str, float] = orjson.loads(match.group(1))
    return result


async def run(args: argparse.Namespace) -> None:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk (make bench installs it)")
    infra = await start_infra(args.db)
    bare, bare_url = start_bare("bench.bare_app:app")
    try:
        intake = start_service(infra, "intake")
        await wrk("bare (warm-up, s)", bare_url, 2, args.connections)
        base = await wrk("bare (s)", bare_url, args.seconds, args.connections)
        await wrk("intake (warm-up, s)", intake.url, 2, args.connections)
        cpu_start = cpu_seconds(intake)
        got = await wrk("intake (s)", intake.url, args.seconds, args.connections)
        cpu_per_request = (cpu_seconds(intake) - cpu_start) / max(got["requests"], 1)
        base_rate = base["requests"] / base["seconds"]
        rate = got["requests"] / got["seconds"]
        report(f"intake single posts, {args.db}, {args.connections} connections, "
               f"{args.seconds}s each", [
                   ("bare endpoint (req/s)", f"{base_rate:,.0f}  p99 {base['p99_ms']:.1f} ms"),
                   ("intake (req/s)", f"{rate:,.0f}  p99 {got['p99_ms']:.1f} ms"),
                   ("ratio = intake / bare", f"{rate / base_rate:.3f}"),
                   ("intake CPU per request (µs)", f"{cpu_per_request * 1e6:,.0f}"),
                   ("intake non-2xx / errors", f"{got['non2xx']:.0f} / {got['errors']:.0f}"),
               ], {"bench": "intake_http", "db": args.db, "connections": args.connections,
                   "bare_per_s": round(base_rate), "intake_per_s": round(rate),
                   "ratio": round(rate / base_rate, 3),
                   "intake_cpu_us_per_request": round(cpu_per_request * 1e6),
                   "bare_p99_ms": base["p99_ms"],
                   "intake_p99_ms": got["p99_ms"], "intake_non2xx": got["non2xx"]})
    finally:
        bare.terminate()
        bare.wait(10)
        await infra.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
