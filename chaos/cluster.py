"""The platform under test: a Tansu broker, a fresh PostgreSQL database and every service as
separate processes (two routers, two mediations and two notifies in one consumer group
each; the two notifies share the sending), each of
which can be killed with SIGKILL and started again on the same port. On the embedded default
(`sqlite`) every service keeps its own SQLite file as `make run` does, one process each."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from kit.bus import wait_for_broker
from kit.db import create_engine
from tests.infra import DEV_KEY, FAST_ENV, ROOT, Broker, free_port

# One process per service, two in the groups the suite rebalances (on PostgreSQL; SQLite
# files have one writer, so the embedded default runs one of each).
REPLICAS = {"intake": 1, "router": 2, "mediation": 2, "notify": 2}
SERVICES = tuple(REPLICAS)
READY_WITHIN = 90.0


@dataclass
class Instance:
    """One service process, known by its name (router-2) and port."""

    service: str
    index: int
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    down_on_purpose: bool = False  # killed by a fault, to be started by it again
    crashes: int = 0  # exits nobody asked for (the suite restarts them, as a supervisor would)

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Cluster:
    """Everything the suite runs, and the handles to break it."""

    var: Path
    database_url: str  # "sqlite": the embedded default, a file per service under var
    env: dict[str, str] = field(default_factory=dict)
    broker: Broker = field(init=False)
    instances: list[Instance] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.var.mkdir(parents=True, exist_ok=True)
        self.broker = Broker(self.var)
        for service, count in REPLICAS.items():
            for index in range(1, (1 if self.sqlite else count) + 1):
                port = free_port()
                self.instances.append(Instance(service, index, port,
                                               self.var / f"{service}-{index}.log"))

    @property
    def intake_url(self) -> str:
        return self.of("intake")[0].url

    @property
    def notify_url(self) -> str:
        return self.of("notify")[0].url

    def of(self, service: str) -> list[Instance]:
        return [i for i in self.instances if i.service == service]

    @property
    def sqlite(self) -> bool:
        return self.database_url == "sqlite"

    def engine(self) -> AsyncEngine:
        """One engine that sees every service's tables (each table's name carries its
        service): on SQLite, the mediation file with the others attached."""
        if not self.sqlite:
            return create_engine(self.database_url, pool_size=2)
        engine = create_engine(f"sqlite+aiosqlite:///{self.var / 'mediation.db'}")

        @event.listens_for(engine.sync_engine, "connect")
        def _attach(dbapi_conn: Any, _record: Any) -> None:
            for service in SERVICES:
                if service != "mediation":
                    dbapi_conn.execute(f"ATTACH DATABASE '{self.var / service}.db' AS {service}")

        return engine

    # --- the broker ---------------------------------------------------------------------

    async def start_broker(self) -> None:
        await asyncio.to_thread(self.broker.start)
        await wait_for_broker(self.broker.bootstrap, within=30)

    async def stop_broker(self) -> None:
        # Tansu may take seconds to exit: wait in a thread, never in the event loop (it runs
        # the stream of cases and the webhook receiver).
        await asyncio.to_thread(self.broker.stop)

    # --- the services -------------------------------------------------------------------

    def _environment(self, instance: Instance) -> dict[str, str]:
        return {**os.environ, **FAST_ENV, "FQ_KAFKA_BOOTSTRAP": self.broker.bootstrap,
                "FQ_DEV_API_KEY": DEV_KEY, "FQ_VAR_DIR": str(self.var),
                **({} if self.sqlite else {"FQ_DATABASE_URL": self.database_url}),
                "FQ_INTAKE_URL": self.intake_url,
                "FQ_SERVICE": instance.service, "FQ_PORT": str(instance.port),
                "FQ_SHUTDOWN_GRACE_SECONDS": "0",
                # The stream's 12345 callers with a phone are owed an SMS: a centre that texts
                # them too (by default the hotline does), so the SMS path is under faults.
                "FQ_SMS_CHANNELS": '["hotline_12345", "walk_in", "open311", "petition"]',
                **self.env}

    def spawn(self, instance: Instance) -> None:
        """Start the process, without waiting for it to be ready."""
        with open(instance.log, "ab") as out:  # the child keeps its own descriptor
            instance.process = subprocess.Popen(
                [sys.executable, "-m", "kit.cli", "serve", instance.service],
                env=self._environment(instance), stdout=out, stderr=subprocess.STDOUT,
                cwd=ROOT, start_new_session=True)
        instance.starts += 1

    def kill(self, instance: Instance) -> None:
        """SIGKILL: no draining, no commit, no goodbye to the consumer group."""
        instance.down_on_purpose = True
        if instance.process is not None and instance.process.poll() is None:
            instance.process.send_signal(signal.SIGKILL)
            instance.process.wait()

    def restart(self, instance: Instance) -> None:
        instance.down_on_purpose = False
        self.spawn(instance)

    async def supervise(self, every: float = 0.5) -> None:
        """Start again any process that exited on its own, as `make run` would, and count it."""
        while True:
            for instance in self.instances:
                if instance.process is not None and not instance.running \
                        and not instance.down_on_purpose:
                    instance.crashes += 1
                    self.spawn(instance)
            await asyncio.sleep(every)

    async def wait_ready(self, instances: list[Instance], within: float = READY_WITHIN) -> None:
        """Wait until every instance answers /readyz with 200 (database and broker reachable)."""
        deadline = time.monotonic() + within
        pending = list(instances)
        async with httpx.AsyncClient(timeout=2) as client:
            while pending:
                for instance in list(pending):
                    try:
                        if (await client.get(instance.url + "/readyz")).status_code == 200:
                            pending.remove(instance)
                    except httpx.HTTPError:
                        pass
                if pending and time.monotonic() > deadline:
                    names = ", ".join(i.name for i in pending)
                    raise TimeoutError(f"not ready within {within:.0f}s: {names}")
                await asyncio.sleep(0.2)

    async def start_all(self) -> None:
        for instance in self.instances:
            self.spawn(instance)
        await self.wait_ready(self.instances)

    def stop_all(self) -> None:
        for instance in self.instances:
            instance.down_on_purpose = True
        for instance in self.instances:
            if instance.running:
                assert instance.process is not None
                instance.process.terminate()
        for instance in self.instances:
            if instance.process is None:
                continue
            try:
                instance.process.wait(20)
            except subprocess.TimeoutExpired:
                instance.process.kill()
                instance.process.wait()

    # --- the database -------------------------------------------------------------------

    async def database_answers(self, engine: AsyncEngine, within: float = 60.0) -> float:
        """Wait until PostgreSQL answers again; returns how long that took."""
        started = time.monotonic()
        while True:
            try:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                return time.monotonic() - started
            except Exception:  # any failure means "not yet"
                if time.monotonic() - started > within:
                    raise
                await asyncio.sleep(0.2)


def restart_postgresql() -> None:
    """Restart the machine's PostgreSQL cluster (fast shutdown: every session is cut)."""
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir())
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main",
                    "restart"], check=True, capture_output=True, timeout=120)


def can_restart_postgresql() -> bool:
    """Whether this machine runs a local cluster we may restart (needs pg_ctlcluster)."""
    return Path("/etc/postgresql").is_dir() and any(Path("/etc/postgresql").iterdir()) and \
        subprocess.run(["which", "pg_ctlcluster"], capture_output=True).returncode == 0
