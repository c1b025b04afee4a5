"""Real infrastructure for the tests: a Tansu broker, a PostgreSQL database (SQLite when no
server answers, except under CI=true), and real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from kit.settings import Settings
from kit.tansu import port_open, start_tansu

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
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


class Broker:
    """A Tansu broker on a free port; restartable (it forgets everything when it stops)."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log = log_dir / "tansu.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = start_tansu("127.0.0.1", self.port, self.log)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@asynccontextmanager
async def serve(app: FastAPI, port: int | None = None) -> AsyncIterator[str]:
    """Run `app` with uvicorn on loopback in this event loop; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                            access_log=False, lifespan="on")
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
        "outbox_poll_seconds": 0.1, **overrides}
    return Settings(**values)  # type: ignore[arg-type]


DEV_KEY = "fq_test_admin_key"
AUTH = {"Authorization": f"Bearer {DEV_KEY}"}
