"""`make run`'s supervisor restarts a service that is alive but fails its health check (a
process frozen with SIGSTOP answers nothing), and forgets its earlier restarts once it has
been healthy for a while. The services here are tiny HTTP servers on free ports, so the
test needs neither the fixed ports of `make run` nor a broker."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kit.platform import Platform
from tests.infra import free_port

pytestmark = pytest.mark.e2e

# A service's /healthz: 200, or, when the file named by its second argument exists as it
# starts, the 503 a service with a stuck consumer loop answers (kit.app).
HEALTH_SERVER = """
import http.server, os, sys
STUCK = os.path.exists(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        stuck = STUCK
        self.send_response(503 if stuck else 200); self.end_headers()
        self.wfile.write(b'{"pid": "%d", "stuck": ["consumer-router"]}' % os.getpid() if stuck
                         else b'{"pid": "%d"}' % os.getpid())
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


class FakePlatform(Platform):
    sick_flag = Path("/nonexistent")

    def launch(self, name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", HEALTH_SERVER, str(self.ports[name]),
                                 str(self.sick_flag)], start_new_session=True)


def _pid(port: int) -> int | None:
    try:
        return int(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).json()["pid"])
    except httpx.HTTPError:
        return None


def _healthy_pid(port: int) -> int | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
    except httpx.HTTPError:
        return None
    return int(response.json()["pid"]) if response.status_code == 200 else None


def _wait(predicate: object, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


@contextlib.contextmanager
def _supervising(run_dir: Path, monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[tuple[FakePlatform, io.StringIO]]:
    monkeypatch.setenv("FQ_VAR_DIR", str(run_dir / "supervisor"))
    platform = FakePlatform()
    platform.ports = {"router": free_port()}
    platform.restarts = {"router": 0}
    platform.health_every, platform.health_failure = 0.5, 2.0
    platform.start_grace, platform.backoff_reset = 0.0, 4.0
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        platform.start_service("router")
        thread = threading.Thread(target=platform.supervise, daemon=True)
        thread.start()
        try:
            yield platform, out
        finally:
            platform.stopping = True
            thread.join(10)
            for proc in platform.services.values():
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
                proc.wait()


def test_a_frozen_service_is_restarted_and_its_backoff_reset_once_healthy(
        run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with _supervising(run_dir, monkeypatch) as (platform, out):
        port = platform.ports["router"]
        assert _wait(lambda: _pid(port), 10)
        frozen = platform.services["router"].pid
        os.kill(frozen, signal.SIGSTOP)
        assert _wait(lambda: _pid(port) not in (None, frozen), 30), out.getvalue()
        assert platform.restarts["router"] == 1
        assert "router failed its health check" in out.getvalue()
        assert "router exited" in out.getvalue()
        # Healthy for backoff_reset seconds: the next crash waits as little as the first.
        assert _wait(lambda: platform.restarts["router"] == 0, 15), out.getvalue()
        assert "router healthy for" in out.getvalue()
        assert "restart back-off reset" in out.getvalue()


def test_a_service_whose_healthz_says_stuck_is_restarted(
        run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Alive and answering, but /healthz says a loop is stuck: restarted, and the log
    says what was stuck."""
    flag = run_dir / "router-stuck"
    flag.write_text("stuck")
    FakePlatform.sick_flag = flag
    try:
        with _supervising(run_dir, monkeypatch) as (platform, out):
            port = platform.ports["router"]
            assert _wait(lambda: _pid(port), 10)
            sick = _pid(port)
            flag.unlink()  # the restarted process will be healthy
            assert _wait(lambda: _healthy_pid(port) not in (None, sick), 30), out.getvalue()
            assert "HTTP 503, stuck: consumer-router" in out.getvalue()
            assert platform.restarts["router"] == 1
    finally:
        FakePlatform.sick_flag = Path("/nonexistent")


def test_a_healthy_service_is_left_alone(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with _supervising(run_dir, monkeypatch) as (platform, out):
        port = platform.ports["router"]
        assert _wait(lambda: _pid(port), 10)
        first = _pid(port)
        time.sleep(4)
        assert _pid(port) == first and platform.restarts["router"] == 0, out.getvalue()
