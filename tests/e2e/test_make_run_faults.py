"""`make run` as a new user meets it: the embedded default (a SQLite file per service, the
published rows kept for replay) under the supervisor, orders posted in waves with pauses so
that the outboxes drain between them, while the router is SIGKILLed three times. Every order
is routed exactly once, and the router comes back each time."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from kit.settings import SERVICE_PORTS
from kit.tansu import port_open
from tests.infra import Isolated, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]
ROOT = Path(__file__).resolve().parents[2]
WAVES, PER_WAVE, PAUSE = 3, 120, 4.0


def _count(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql).fetchone()[0])


async def _ready(client: httpx.AsyncClient, port: int) -> bool:
    try:
        return (await client.get(f"http://127.0.0.1:{port}/readyz", timeout=1)).status_code == 200
    except httpx.HTTPError:
        return False


async def _post_wave(client: httpx.AsyncClient, key: str, wave: int, run: str) -> int:
    accepted = 0
    for i in range(PER_WAVE):
        r = await client.post(
            "http://127.0.0.1:8001/v1/intake/hotline_12345",
            headers={"Authorization": f"Bearer {key}"}, json={
                "order_no": f"GD{run}-{wave}-{i:04d}",
                "content": f"小区楼下烧烤摊油烟太大，晚上十一点还很吵，第{i}次反映。",
                "received_at": "2026-12-07T09:30:00+08:00", "caller_name": "李先生",
                "address": "城关街道"})
        accepted += r.status_code in (200, 202)
        await asyncio.sleep(0.02)
    return accepted


async def _kill_router(client: httpx.AsyncClient, at: float) -> int:
    await asyncio.sleep(at)
    pid = int((await client.get("http://127.0.0.1:8002/healthz")).json()["pid"])
    os.kill(pid, signal.SIGKILL)
    return pid


async def test_orders_in_waves_with_the_router_killed_are_routed_exactly_once(
        isolated: Isolated) -> None:
    # A broker of its own: the session's carries other tests' cases, which this platform's
    # consumers would take from the start of each topic.
    broker, run_dir = isolated.broker, isolated.directory
    if any(port_open("127.0.0.1", p) for p in SERVICE_PORTS.values()):
        pytest.skip("ports 8001-8004 are taken (is `make run` running?)")
    var = run_dir / "make-run-faults"
    env = {**os.environ, "FQ_VAR_DIR": str(var), "FQ_KAFKA_BOOTSTRAP": broker.bootstrap,
           "FQ_OUTBOX_POLL_SECONDS": "0.2"}
    for unset in ("FQ_DEV_API_KEY", "FQ_DATABASE_URL", "FQ_OUTBOX_RETENTION_SECONDS"):
        env.pop(unset, None)  # the embedded default as `make run` has it
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block; waits are threaded
        [sys.executable, "-m", "kit.cli", "run"], env=env, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run = os.urandom(3).hex()
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            await eventually(lambda: asyncio.gather(*(_ready(client, p)
                                                      for p in SERVICE_PORTS.values())),
                             all, within=90)
            key = (var / "dev-api-key").read_text().strip()
            accepted, killed = 0, []
            for wave in range(WAVES):
                # One router kill in the middle of each wave.
                posted, pid = await asyncio.gather(_post_wave(client, key, wave, run),
                                                   _kill_router(client, 2.0))
                accepted += posted
                killed.append(pid)
                await asyncio.sleep(PAUSE)  # the outboxes drain
                await eventually(lambda: _ready(client, 8002), bool, within=60)
            assert accepted == WAVES * PER_WAVE
            mediation = var / "mediation.db"
            await eventually(
                lambda: asyncio.to_thread(_count, mediation, "SELECT count(*) FROM "
                                          "mediation_cases WHERE status = 'routed'"),
                lambda n: n >= accepted, within=120)
            pid = int((await client.get("http://127.0.0.1:8002/healthz")).json()["pid"])
            assert pid not in killed, "the router was restarted after each kill"
        # Exactly once: one routing decision and one 'routed' step per case, nothing waiting.
        assert _count(mediation, "SELECT count(*) FROM mediation_cases") == accepted
        assert _count(mediation, "SELECT count(*) FROM (SELECT case_id FROM "
                      "mediation_case_history WHERE to_status = 'routed' GROUP BY case_id "
                      "HAVING count(*) > 1)") == 0
        assert _count(var / "router.db", "SELECT count(*) FROM router_decisions") == accepted
        # Every outbox drains (mediation's lifecycle events follow the routed cases).
        await eventually(lambda: asyncio.to_thread(lambda: [
            _count(var / f"{service}.db", f"SELECT count(*) FROM {service}_outbox")
            for service in SERVICE_PORTS]), lambda waiting: not any(waiting), within=60)
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    finally:
        if proc.poll() is None:
            # SIGTERM: the supervisor stops its services (each in a session of its own, so a
            # SIGKILL of the supervisor alone would leave them holding the ports).
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.communicate, timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.communicate)
    assert out.count("router exited") == WAVES
    assert "IntegrityError" not in out
    for log in (var / "log").glob("*.log"):
        assert "UNIQUE constraint failed" not in log.read_text(errors="replace"), log.name
