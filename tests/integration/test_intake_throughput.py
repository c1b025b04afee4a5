"""Intake throughput, measured and printed (no timed assertions: machines differ).

The service runs as its own process (`fengqiao serve intake`, as in production) on a real
broker of its own and the real database; the client posts single work orders with several connections, then
batches of 1,000. Run with `-s` to see the figures; FQ_INTAKE_BENCH_SCALE=10 for a longer run:

    uv run pytest tests/integration/test_intake_throughput.py -s
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.infra import AUTH, DEV_KEY, TEST_HASH_SECRET, Isolated, free_port
from tests.integration.test_intake import order

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SCALE = int(os.environ.get("FQ_INTAKE_BENCH_SCALE", "1"))
CONNECTIONS = 16


@pytest.fixture(scope="module")
def intake_process(isolated: Isolated, run_dir: Path) -> Iterator[str]:
    """Intake on a broker of its own, so that thousands of cases do not queue up in front of
    the routers of later tests on the session's broker."""
    broker, database_url = isolated.broker, isolated.database_url
    port = free_port()
    var = run_dir / "throughput"
    var.mkdir(exist_ok=True)
    env = {**os.environ, "FQ_SERVICE": "intake", "FQ_PORT": str(port),
           "FQ_KAFKA_BOOTSTRAP": broker.bootstrap, "FQ_DEV_API_KEY": DEV_KEY,
           "FQ_VAR_DIR": str(var), "FQ_LOG_LEVEL": "WARNING", "FQ_HASH_SECRET": TEST_HASH_SECRET}
    if not database_url.startswith("sqlite"):
        env["FQ_DATABASE_URL"] = database_url
    log = (var / "intake.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "kit.cli", "serve", "intake"], env=env,
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (var / "intake.log").read_text(errors="replace")[-2000:]
            time.sleep(0.2)
        else:
            pytest.fail("intake did not become ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


async def test_measure_single_posts_and_batches(intake_process: str, unique: str) -> None:
    singles = 1000 * SCALE
    batches = 5 * SCALE
    limits = httpx.Limits(max_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=intake_process, headers=AUTH, limits=limits,
                                 timeout=60) as client:
        # Warm up connections and the service's code paths.
        await asyncio.gather(*[client.post("/v1/intake/hotline_12345",
                                           json=order(f"W{unique}-{i}"))
                               for i in range(CONNECTIONS)])
        queue = iter(range(singles))
        statuses: list[int] = []

        async def worker() -> None:
            for i in queue:
                r = await client.post("/v1/intake/hotline_12345", json=order(f"S{unique}-{i}"))
                statuses.append(r.status_code)

        started = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(CONNECTIONS)])
        single_seconds = time.perf_counter() - started

        accepted = 0
        started = time.perf_counter()
        for b in range(batches):
            r = await client.post("/v1/intake/hotline_12345/batch", json={
                "items": [order(f"B{unique}-{b}-{i}") for i in range(1000)]})
            accepted += r.json()["accepted"]
        batch_seconds = time.perf_counter() - started

    assert statuses.count(202) == singles
    assert accepted == batches * 1000
    print(f"\nintake throughput ({CONNECTIONS} connections, {os.cpu_count()} CPUs): "
          f"single posts {singles / single_seconds:,.0f} req/s "
          f"({singles} in {single_seconds:.2f} s); "
          f"batches of 1,000 {batches / batch_seconds:.1f} req/s = "
          f"{accepted / batch_seconds:,.0f} reports/s ({accepted} in {batch_seconds:.2f} s)")
