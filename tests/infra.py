"""Real infrastructure for the tests: a Tansu broker, a PostgreSQL database (SQLite when no
server answers, except under CI=true), and real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Executable, Row, Table, text
from sqlalchemy.ext.asyncio import create_async_engine

from contracts.topics import all_topic_names
from kit.bus import create_topics, wait_for_broker
from kit.db import create_engine
from kit.settings import Settings
from kit.tansu import port_open, start_tansu

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# "sqlite" runs the tests on the embedded default's database even where PostgreSQL answers.
TEST_BACKEND = os.environ.get("FQ_TEST_BACKEND", "").lower()
PG_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_available() -> bool:
    return bool(os.environ.get("FQ_TEST_DATABASE_URL")) or port_open("127.0.0.1", 5432)


async def create_pg_database() -> tuple[str, str]:
    """A fresh database for this test session; returns (url, name)."""
    base = os.environ.get("FQ_TEST_DATABASE_URL", PG_ADMIN_URL)
    name = f"fq_test_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return base.rsplit("/", 1)[0] + "/" + name, name


async def drop_pg_database(name: str) -> None:
    base = os.environ.get("FQ_TEST_DATABASE_URL", PG_ADMIN_URL)
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def read_rows(database_url: str, statement: Executable) -> list[Row[Any]]:
    """The rows of one query, on a connection of its own (an engine made and disposed)."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(statement)).all())
    finally:
        await engine.dispose()


async def insert_rows(database_url: str, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` into `table` in one transaction of their own."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(table.insert(), rows)
    finally:
        await engine.dispose()


class Broker:
    """A Tansu broker on a free port; restartable (it forgets everything when it stops)."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log = log_dir / "tansu.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = start_tansu("127.0.0.1", self.port, self.log)

    async def ready_with_topics(self, within: float = 20.0, partitions: int = 4) -> None:
        """Once started: wait until it answers, then create every topic of the platform."""
        await wait_for_broker(self.bootstrap, within=within)
        await create_topics(self.bootstrap, all_topic_names(), partitions)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@dataclass(frozen=True)
class Isolated:
    """A broker and a database of a test module's own (see `isolated_infrastructure`)."""

    broker: Broker
    database_url: str
    directory: Path


@asynccontextmanager
async def isolated_infrastructure(directory: Path, session_database_url: str
                                  ) -> AsyncIterator[Isolated]:
    """A Tansu broker with every topic, and a fresh PostgreSQL database (on SQLite: each
    service's file in `directory`), for a test module whose traffic must not meet other
    modules': one that floods a stage, searches every topic, or leaves subscriptions behind."""
    directory.mkdir(parents=True, exist_ok=True)
    broker = Broker(directory)
    broker.start()
    name = ""
    try:
        await broker.ready_with_topics()
        url = session_database_url
        if not session_database_url.startswith("sqlite"):
            url, name = await create_pg_database()
        yield Isolated(broker, url, directory)
    finally:
        broker.stop()
        if name:
            await drop_pg_database(name)


@asynccontextmanager
async def serve(app: FastAPI, port: int | None = None) -> AsyncIterator[str]:
    """Run `app` with uvicorn on loopback in this event loop; yields its base URL."""
    port = port or free_port()
    # Keep idle connections open longer than httpx keeps them (5 s): otherwise a client may
    # reuse a connection at the moment the server closes it (a ReadError no test means).
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                            access_log=False, lifespan="on", timeout_keep_alive=60)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(400):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.025)
    else:
        raise TimeoutError("server did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


def service_settings(service: str, bootstrap: str, database_url: str, run_dir: Path,
                     **overrides: object) -> Settings:
    """Settings for one service under test: its own SQLite file, or the shared test database
    on PostgreSQL (each service's tables carry its name)."""
    url = database_url
    if database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{run_dir / f'{service}.db'}"
    values: dict[str, object] = {
        "service": service, "kafka_bootstrap": bootstrap, "database_url": url,
        "auth_database_url": url, "var_dir": run_dir, "dev_api_key": DEV_KEY,
        "consumer_poll_ms": 50, "consumer_session_timeout_ms": 6000,
        "outbox_poll_seconds": 0.1, "outbox_retention_seconds": 0,
        "webhook_denied_networks": [], "hash_secret": TEST_HASH_SECRET,
        "hotline_callback_secret": TEST_HOTLINE_CALLBACK_SECRET, **overrides}
    return Settings(**values)  # type: ignore[arg-type]


DEV_KEY = "fq_test_admin_key"
# Not the built-in development secrets: on PostgreSQL the services refuse to start with those.
TEST_HASH_SECRET = "fengqiao-test-hash-secret-not-for-production"
TEST_HOTLINE_CALLBACK_SECRET = "whsec_dGVzdC1ob3RsaW5lLWNhbGxiYWNrLXNlY3JldA=="
AUTH = {"Authorization": f"Bearer {DEV_KEY}"}


ROOT = Path(__file__).resolve().parents[1]

# Fast settings for services under test: short polls, quick group rebalances.
# No outbox replay window: tests share one database across several brokers, and a service
# meeting a broker it has not published to would replay every kept row (the chaos suite
# turns it on). Receivers here are on loopback, which notify refuses by default.
FAST_ENV = {"FQ_CONSUMER_POLL_MS": "50", "FQ_CONSUMER_SESSION_TIMEOUT_MS": "6000",
            "FQ_OUTBOX_POLL_SECONDS": "0.1", "FQ_OUTBOX_RETENTION_SECONDS": "0",
            "FQ_WEBHOOK_DENIED_NETWORKS": "[]", "FQ_HASH_SECRET": TEST_HASH_SECRET,
            "FQ_HOTLINE_CALLBACK_SECRET": TEST_HOTLINE_CALLBACK_SECRET}


@dataclass
class ServiceProcess:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def _wait_ready(started: dict[str, ServiceProcess], within: float) -> list[str]:
    pending = set(started)
    deadline = time.monotonic() + within
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            if started[name].process.poll() is not None:
                return sorted(pending)
            try:
                if httpx.get(started[name].url + "/readyz", timeout=1).status_code == 200:
                    pending.discard(name)
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    return sorted(pending)


@contextmanager
def service_processes(ports: dict[str, int], *, bootstrap: str, database_url: str,
                      var: Path, env: dict[str, str] | None = None, ready_within: float = 150.0
                      ) -> Iterator[dict[str, ServiceProcess]]:
    """Run services as separate processes (`fengqiao serve <name>`), as in production, and
    stop them with SIGTERM afterwards. Raises RuntimeError with their logs if one is not
    ready within `ready_within` seconds."""
    var.mkdir(parents=True, exist_ok=True)
    base = {**os.environ, **FAST_ENV, "FQ_KAFKA_BOOTSTRAP": bootstrap,
            "FQ_DEV_API_KEY": DEV_KEY, "FQ_VAR_DIR": str(var), **(env or {})}
    if not database_url.startswith("sqlite"):
        base["FQ_DATABASE_URL"] = database_url
    started: dict[str, ServiceProcess] = {}
    try:
        for name, port in ports.items():
            log = var / f"{name}-{port}.log"
            with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
                process = subprocess.Popen(
                    [sys.executable, "-m", "kit.cli", "serve", name],
                    env={**base, "FQ_SERVICE": name, "FQ_PORT": str(port)},
                    stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
            started[name] = ServiceProcess(name, f"http://127.0.0.1:{port}", process, log)
        not_ready = _wait_ready(started, ready_within)
        if not_ready:
            logs = {n: started[n].log.read_text(errors="replace")[-3000:] for n in not_ready}
            raise RuntimeError(f"services not ready: {not_ready}\n{logs}")
        yield started
    finally:
        for service in started.values():
            if service.process.poll() is None:
                service.process.terminate()
        for service in started.values():
            try:
                service.process.wait(20)
            except subprocess.TimeoutExpired:
                service.process.kill()
                service.process.wait()


T = TypeVar("T")


async def eventually(fetch: Callable[[], Awaitable[T]], until: Callable[[T], bool],
                     within: float = 30.0) -> T:
    """Fetch until `until` holds, for at most `within` seconds; fail the test if it never
    does. Returns the last value fetched."""
    deadline = time.monotonic() + within
    value = await fetch()
    while not until(value) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        value = await fetch()
    assert until(value), f"not within {within}s: {value!r}"
    return value
