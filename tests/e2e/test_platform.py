"""`make run`'s supervisor: starts all four services, prints where they are, restarts one
that dies, and stops everything on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from kit.settings import ALL_PORTS
from kit.tansu import port_open
from tests.infra import Broker

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(predicate: object, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def test_platform_starts_restarts_and_stops_cleanly(broker: Broker, run_dir: Path) -> None:
    if any(port_open("127.0.0.1", p) for p in ALL_PORTS.values()):
        pytest.skip("ports 8001-8005 are taken (is `make run` running?)")
    var = run_dir / "platform"
    env = {**os.environ, "FQ_VAR_DIR": str(var), "FQ_KAFKA_BOOTSTRAP": broker.bootstrap}
    env.pop("FQ_DEV_API_KEY", None)
    env.pop("FQ_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "kit.cli", "run"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert _wait(lambda: all(_ready(p) for p in ALL_PORTS.values()), 90)
        key = (var / "dev-api-key").read_text().strip()
        assert key.startswith("fq_dev_")
        r = httpx.get("http://127.0.0.1:8003/v1/cases",
                      headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200

        pid = int(httpx.get("http://127.0.0.1:8002/healthz").json()["pid"])
        os.kill(pid, signal.SIGKILL)
        assert _wait(lambda: not _ready(8002), 10)
        assert _wait(lambda: _ready(8002), 60), "the router was not restarted"
        assert int(httpx.get("http://127.0.0.1:8002/healthz").json()["pid"]) != pid

        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            # SIGTERM first: the services run in sessions of their own and would outlive a
            # SIGKILL of the supervisor, holding the ports.
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0
    assert "fengqiao is running" in out and key in out
    # The workbench's address and the dev account's sign-in.
    signed_in = re.search(r"http://127\.0\.0\.1:8005 .*sign in as dev / (\S+)\)", out)
    assert signed_in, out
    assert "router exited" in out
    assert "stopped." in out
    assert not any(port_open("127.0.0.1", p) for p in ALL_PORTS.values())
