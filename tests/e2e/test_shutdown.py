"""Graceful shutdown: on SIGTERM a service reports not-ready first, keeps answering for its
grace period, finishes its work and exits cleanly; nothing it accepted is lost."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import orjson
import pytest

from contracts.topics import CASE_REPORTED
from tests.infra import AUTH, Broker, free_port, service_processes
from tests.integration.test_bus import read_topic

pytestmark = pytest.mark.e2e


async def test_sigterm_drops_readiness_first_then_drains_and_exits(
        broker: Broker, database_url: str, run_dir: Path, unique: str) -> None:
    with service_processes({"intake": free_port()}, bootstrap=broker.bootstrap,
                           database_url=database_url, var=run_dir / "shutdown",
                           env={"FQ_SHUTDOWN_GRACE_SECONDS": "3"}) as started:
        intake = started["intake"]
        case_ids = []
        async with httpx.AsyncClient(base_url=intake.url, headers=AUTH) as client:
            for i in range(20):
                r = await client.post("/v1/intake/hotline_12345", json={
                    "order_no": f"SD-{unique}-{i}", "content": "噪音扰民",
                    "received_at": "2026-11-23T09:30:00+08:00"})
                assert r.status_code == 202
                case_ids.append(r.json()["case_id"])
            intake.process.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            ready = await client.get("/readyz")
            health = await client.get("/healthz")
            assert ready.status_code == 503
            assert health.status_code == 200
        # uvicorn re-raises the signal once it has shut down cleanly.
        assert intake.process.wait(30) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in intake.log.read_text()
        assert time.monotonic() - sent >= 2.5, "served its grace period before closing"
    published = {orjson.loads(v)["subject"] for _, v, _ in
                 await read_topic(broker.bootstrap, CASE_REPORTED, 100_000, within=5)}
    assert set(case_ids) <= published
