"""The shipped alert rules against the running services, with faults caused from outside,
as an on-call engineer would meet them: under plain traffic nothing fires; a consumer
frozen with SIGSTOP, a receiver that fails every delivery, a service killed, the broker
frozen and a poison message each fire their alert, and each alert clears once the fault is repaired.

A real Prometheus (Debian's package) scrapes the four services every second and evaluates
deploy/prometheus/alerts.yml every second, with every duration in the rules (`for:`,
range windows, offsets, subqueries) divided by 30: 10 minutes become 20 seconds, so the
run fits in a few minutes. Thresholds in seconds (FengqiaoServiceStuck's 300 s,
FengqiaoOutboxBacklogOld's 60 s) are not scaled: they stay quiet here, and their firing
is shown by promtool (deploy/prometheus/alerts_test.yml), as are the long trends
(FengqiaoOverdueCasesRising, FengqiaoConsumerLagGrowing above 1000 messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

from contracts.topics import intake_topic
from kit.bus import Producer, Record
from kit.settings import SERVICE_PORTS
from tests.e2e.test_observability import (
    CONTENTS,
    Receiver,
    _work_order,
    prometheus_binary,  # noqa: F401  (a fixture)
    running_prometheus,
    scrape_config,
)
from tests.infra import (
    AUTH,
    Isolated,
    ServiceProcess,
    free_port,
    service_processes,
)
from tests.test_deploy import PROMETHEUS_DIR

pytestmark = pytest.mark.e2e

SPEED_UP = 30
DURATION = re.compile(r"(?<![\w.])(\d+)([smhd])\b")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
ENV = {
    # The broker's lag figures every second, as the scrapes.
    "FQ_CONSUMER_GROUP_LAG_INTERVAL_SECONDS": "1",
    # A failing receiver is retried about every second, and never given up on.
    "FQ_DELIVERY_BACKOFF_BASE_SECONDS": "0.2", "FQ_DELIVERY_BACKOFF_MAX_SECONDS": "1",
    "FQ_DELIVERY_MAX_ATTEMPTS": "1000",
}


def sped_up(text: str, factor: int = SPEED_UP) -> str:
    """`text` with every Prometheus duration divided by `factor` (at least 1 s)."""
    def scale(found: re.Match[str]) -> str:
        seconds = int(found.group(1)) * SECONDS[found.group(2)]
        return f"{max(1, round(seconds / factor))}s"
    return DURATION.sub(scale, text)


FOR_AT_LEAST = 8


def _seconds(duration: str) -> int:
    found = DURATION.fullmatch(duration)
    assert found, duration
    return int(found.group(1)) * SECONDS[found.group(2)]


def test_durations_are_sped_up_and_nothing_else() -> None:
    assert sped_up('increase(x{status=~"5.."}[10m]) > 1000 unless y offset 5m') == (
        'increase(x{status=~"5.."}[20s]) > 1000 unless y offset 10s')
    assert sped_up("max_over_time(count(up)[30m:]) and z[1h:1m]") == (
        "max_over_time(count(up)[60s:]) and z[120s:2s]")
    assert sped_up('fq_x{topic="intake.hotline_12345.v1"} > 0.5') == (
        'fq_x{topic="intake.hotline_12345.v1"} > 0.5')


def _fast_rules(path: Path) -> None:
    rules: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["expr"] = sped_up(rule["expr"])
            if "for" in rule:
                # At least four scrapes: on a loaded machine one or two scrapes of a busy
                # service can time out, which is not what a `for:` of minutes means.
                rule["for"] = f"{max(FOR_AT_LEAST, _seconds(sped_up(rule['for'])))}s"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")


# ------------------------------------------------------------------ the running system


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {name: free_port() for name in SERVICE_PORTS}


@pytest.fixture(scope="module")
def prometheus(prometheus_binary: str, ports: dict[str, int],  # noqa: F811
               isolated: Isolated) -> Iterator[str]:
    home = isolated.directory / "prometheus"
    home.mkdir(exist_ok=True)
    address = f"127.0.0.1:{free_port()}"
    config = scrape_config(ports, address)
    # Every 2 s with a 2 s timeout, not 1 s: on a loaded machine a 1 s scrape of a busy
    # service sometimes times out, and 4 s (2 minutes, sped up) of them is "down".
    config["global"].update(scrape_interval="2s", scrape_timeout="2s")
    _fast_rules(home / "alerts.yml")
    config["rule_files"] = [str(home / "alerts.yml")]
    (home / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    with running_prometheus(prometheus_binary, home, address) as url:
        yield url


class Platform:
    """The four services as processes; one can be killed and started again."""

    def __init__(self, isolated: Isolated, ports: dict[str, int]) -> None:
        self.isolated = isolated
        self.ports = ports
        self.stack = contextlib.ExitStack()
        self.services: dict[str, ServiceProcess] = {}

    def start(self, *names: str) -> None:
        started = self.stack.enter_context(service_processes(
            {n: self.ports[n] for n in names}, bootstrap=self.isolated.broker.bootstrap,
            database_url=self.isolated.database_url,
            var=self.isolated.directory / "services",
            # notify asks intake for the citizen's phone (SMS): on its port, not 8001.
            env={**ENV, "FQ_INTAKE_URL": f"http://127.0.0.1:{self.ports['intake']}"},
            ready_within=180))
        self.services.update(started)

    def signal(self, name: str, signum: int) -> None:
        os.kill(self.services[name].process.pid, signum)


@pytest.fixture(scope="module")
def platform(isolated: Isolated, ports: dict[str, int], prometheus: str) -> Iterator[Platform]:
    running = Platform(isolated, ports)
    with running.stack:
        running.start(*SERVICE_PORTS)
        yield running
        for service in running.services.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(service.process.pid, signal.SIGCONT)


def _alerts(prometheus: str) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = httpx.get(
        prometheus + "/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return alerts


def _firing(prometheus: str, name: str, **labels: str) -> bool:
    return any(a["state"] == "firing" and a["labels"]["alertname"] == name
               and all(a["labels"].get(k) == v for k, v in labels.items())
               for a in _alerts(prometheus))


def _active(prometheus: str, name: str, **labels: str) -> bool:
    """Firing or pending."""
    return any(a["labels"]["alertname"] == name
               and all(a["labels"].get(k) == v for k, v in labels.items())
               for a in _alerts(prometheus))


async def _within(seconds: float, condition: Any, what: str) -> float:
    """Wait until `condition()` holds; returns the seconds it took."""
    start = time.monotonic()
    while not await asyncio.to_thread(condition):
        if time.monotonic() - start > seconds:
            raise AssertionError(f"not within {seconds} s: {what}")
        await asyncio.sleep(0.5)
    return time.monotonic() - start


@contextlib.asynccontextmanager
async def _receiver(app: Any) -> AsyncIterator[str]:
    """tests.infra.serve, but one that stops within seconds: notify keeps retrying its
    pending deliveries against this server, and a graceful shutdown would wait for them."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False,
        timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, 10)
        except TimeoutError:
            server.force_exit = True


@contextlib.asynccontextmanager
async def _traffic(intake: str) -> AsyncIterator[list[int]]:
    """A case reported to intake every half second while the block runs."""
    sent = [0]

    async def report() -> None:
        async with httpx.AsyncClient(headers=AUTH, timeout=5) as client:
            while True:
                order = _work_order(f"LIVE-{time.time_ns():x}", CONTENTS[sent[0] % len(CONTENTS)])
                with contextlib.suppress(httpx.HTTPError):
                    posted = await client.post(intake + "/v1/intake/hotline_12345", json=order)
                    sent[0] += posted.status_code == 202
                await asyncio.sleep(0.5)

    task = asyncio.create_task(report())
    try:
        yield sent
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# ------------------------------------------------------------------ the test


# Scaled: the longest window any of these alerts clears with is 20 s (10 minutes), so
# two windows and the scrape, evaluation and exporter delays fit in 60 s.
FIRES_WITHIN = 60.0
CLEARS_WITHIN = 60.0


# Starting five processes on a loaded 2-core machine can take minutes; the faults
# themselves take about two.
@pytest.mark.timeout(600)
async def test_faults_fire_their_alerts_which_clear_after_the_repair(
        platform: Platform, prometheus: str, isolated: Isolated) -> None:
    services = platform.services
    intake, notify = services["intake"].url, services["notify"].url
    async with _traffic(intake) as sent, httpx.AsyncClient(headers=AUTH, timeout=10) as client:
        # Plain traffic, 30 s (15 minutes at production speed): no alert fires.
        await _within(30, lambda: len(httpx.get(
            prometheus + "/api/v1/query", params={"query": "up == 1"}).json()["data"]["result"])
            == len(SERVICE_PORTS) + 1, "every target up")
        quiet_until = time.monotonic() + 30
        while time.monotonic() < quiet_until:
            alerts = await asyncio.to_thread(_alerts, prometheus)
            assert not [a for a in alerts if a["state"] == "firing"], alerts
            await asyncio.sleep(1)
        assert sent[0] >= 10, "the traffic did not flow"

        # Mediation frozen (its consumer with it), a department's receiver down.
        receiver = Receiver(fail=-1)
        async with _receiver(receiver.app) as receiver_url:
            created = await client.post(notify + "/v1/subscriptions", json={
                "name": "live alerts: a department", "url": receiver_url + "/hook"})
            assert created.status_code == 201, created.text
            subscription = created.json()["id"]
            platform.signal("mediation", signal.SIGSTOP)
            frozen = await _within(FIRES_WITHIN, lambda: _firing(
                prometheus, "FengqiaoConsumerStalled", group="mediation"),
                "FengqiaoConsumerStalled for the frozen mediation")
            await _within(FIRES_WITHIN, lambda: _firing(
                prometheus, "FengqiaoServiceDown", job="mediation"), "mediation down")
            await _within(FIRES_WITHIN, lambda: _firing(
                prometheus, "FengqiaoDeliveriesFailing", receiver=subscription),
                "FengqiaoDeliveriesFailing for the dead receiver")
            assert not _active(prometheus, "FengqiaoConsumerStalled", group="router")

            # Repaired: mediation thawed, the receiver answers again.
            platform.signal("mediation", signal.SIGCONT)
            receiver.fail = 0
            for name, labels in (("FengqiaoConsumerStalled", {"group": "mediation"}),
                                 ("FengqiaoServiceDown", {"job": "mediation"}),
                                 ("FengqiaoDeliveriesFailing", {"receiver": subscription})):
                await _within(CLEARS_WITHIN, lambda n=name, ls=labels: not _active(
                    prometheus, n, **ls), f"{name} {labels} cleared")
            assert receiver.received > 0
            await client.delete(f"{notify}/v1/subscriptions/{subscription}")

        # The router killed: down, and its group stalls while cases keep coming.
        platform.signal("router", signal.SIGKILL)
        await _within(FIRES_WITHIN, lambda: _firing(
            prometheus, "FengqiaoServiceDown", job="router"), "router down")
        await _within(FIRES_WITHIN, lambda: _firing(
            prometheus, "FengqiaoConsumerStalled", group="router"), "router's group stalled")
        platform.start("router")
        for name, labels in (("FengqiaoServiceDown", {"job": "router"}),
                             ("FengqiaoConsumerStalled", {"group": "router"})):
            await _within(CLEARS_WITHIN, lambda n=name, ls=labels: not _active(
                prometheus, n, **ls), f"{name} {labels} cleared")

        # The broker frozen: intake keeps taking reports (into its outbox), none is routed.
        # The lag cannot be read then (its series go: no figure rather than a stale one).
        assert isolated.broker.proc is not None
        broker_pid = isolated.broker.proc.pid
        os.kill(broker_pid, signal.SIGSTOP)
        try:
            await _within(FIRES_WITHIN, lambda: _firing(prometheus, "FengqiaoRoutingStalled"),
                          "FengqiaoRoutingStalled while the broker is frozen")
        finally:
            os.kill(broker_pid, signal.SIGCONT)
        await _within(CLEARS_WITHIN, lambda: not _active(prometheus, "FengqiaoRoutingStalled"),
                      "FengqiaoRoutingStalled cleared")

        # A poison message: dead letters, recent ones only, cleared when none come.
        producer = Producer(isolated.broker.bootstrap, client_id="live-alerts")
        await producer.start()
        try:
            await producer.send_all([Record(intake_topic("hotline_12345"), b"{not json",
                                            key="LIVE-poison")])
        finally:
            await producer.stop()
        topic = intake_topic("hotline_12345") + ".dlq"
        await _within(FIRES_WITHIN, lambda: _firing(prometheus, "FengqiaoDeadLetters",
                                                    topic=topic), "dead letters")
        await _within(CLEARS_WITHIN, lambda: not _active(prometheus, "FengqiaoDeadLetters"),
                      "dead letters cleared")

        # All repaired: nothing is left firing under the same traffic.
        await _within(CLEARS_WITHIN, lambda: not [
            a for a in _alerts(prometheus) if a["state"] == "firing"], "no alert left")
    # Seen from outside the frozen consumer, by the other services' lag figures.
    assert frozen < FIRES_WITHIN
    print(f"frozen mediation seen stalled after {frozen:.0f} s")
