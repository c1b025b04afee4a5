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
import subprocess
import sys
import time
import uuid

import httpx
import orjson

from bench.common import ROOT, report, start_infra, start_service
from tests.infra import DEV_KEY, free_port


def wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    env = {**os.environ, "FQ_BENCH_KEY": DEV_KEY, "FQ_BENCH_RUN": uuid.uuid4().hex[:8]}
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency",
         "-s", str(ROOT / "bench" / "post_orders.lua"), url],
        env=env, capture_output=True, text=True, check=True).stdout
    match = re.search(r"^JSON (.*)$", out, re.MULTILINE)
    if not match:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    result: dict[str, float] = orjson.loads(match.group(1))
    return result


def start_bare() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--host", "127.0.0.1",
         "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
         "--log-level", "warning"], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url + "/docs", timeout=0.5)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError("bare app did not start")


async def run(args: argparse.Namespace) -> None:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk (make bench installs it)")
    infra = await start_infra(args.db)
    bare, bare_url = start_bare()
    try:
        intake_url = start_service(infra, "intake")
        wrk(bare_url, 2, args.connections)  # warm-up
        base = wrk(bare_url, args.seconds, args.connections)
        wrk(intake_url, 2, args.connections)
        got = wrk(intake_url, args.seconds, args.connections)
        base_rate = base["requests"] / base["seconds"]
        rate = got["requests"] / got["seconds"]
        report(f"intake single posts, {args.db}, {args.connections} connections, "
               f"{args.seconds}s each", [
                   ("bare endpoint (req/s)", f"{base_rate:,.0f}  p99 {base['p99_ms']:.1f} ms"),
                   ("intake (req/s)", f"{rate:,.0f}  p99 {got['p99_ms']:.1f} ms"),
                   ("ratio = intake / bare", f"{rate / base_rate:.3f}"),
                   ("intake non-2xx / errors", f"{got['non2xx']:.0f} / {got['errors']:.0f}"),
               ], {"bench": "intake_http", "db": args.db, "connections": args.connections,
                   "bare_per_s": round(base_rate), "intake_per_s": round(rate),
                   "ratio": round(rate / base_rate, 3), "bare_p99_ms": base["p99_ms"],
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
