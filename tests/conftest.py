"""Session fixtures: the real broker and database every integration test talks to."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kit.bus import Producer
from tests.infra import (
    IN_CI,
    TEST_BACKEND,
    Broker,
    Isolated,
    create_pg_database,
    drop_pg_database,
    isolated_infrastructure,
    postgres_available,
)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fengqiao")


@pytest.fixture(scope="session")
def broker(run_dir: Path) -> Iterator[Broker]:
    """Tansu on a free port, with every topic created. Under CI=true, failing to start fails."""
    b = Broker(run_dir)
    try:
        b.start()
    except Exception as exc:  # noqa: BLE001 - any failure to start means no broker
        if IN_CI:
            pytest.fail(f"the Tansu broker could not start under CI: {exc}")
        pytest.skip(f"no broker: {exc}")

    asyncio.run(b.ready_with_topics())
    yield b
    b.stop()


@pytest.fixture(scope="session")
def database_url(run_dir: Path) -> Iterator[str]:
    """A fresh PostgreSQL database when a server answers (required under CI), else SQLite.
    FQ_TEST_BACKEND=sqlite chooses the embedded default's SQLite whatever answers: `make test`
    runs the tests marked `both_backends` a second time that way."""
    if TEST_BACKEND == "sqlite":
        yield f"sqlite+aiosqlite:///{run_dir / 'test.db'}"
        return
    if postgres_available():
        try:
            url, name = asyncio.run(create_pg_database())
        except Exception as exc:  # noqa: BLE001 - report what went wrong, then decide
            if IN_CI:
                pytest.fail(f"PostgreSQL is required under CI and failed: {exc}")
            url, name = "", ""
        if url:
            yield url
            asyncio.run(drop_pg_database(name))
            return
    elif IN_CI:
        pytest.fail("PostgreSQL is required under CI=true but nothing answers on 127.0.0.1:5432 "
                    "and FQ_TEST_DATABASE_URL is not set")
    yield f"sqlite+aiosqlite:///{run_dir / 'test.db'}"


@pytest.fixture
async def producer(broker: Broker) -> AsyncIterator[Producer]:
    """The kit's producer on the session's broker."""
    p = Producer(broker.bootstrap, "test")
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
def unique() -> str:
    """A short unique suffix so tests sharing the broker and database never collide."""
    return uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
async def isolated(request: pytest.FixtureRequest, run_dir: Path, database_url: str
                   ) -> AsyncIterator[Isolated]:
    """A broker and a database for this test module alone (see tests/infra.py)."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    async with isolated_infrastructure(run_dir / name, database_url) as own:
        yield own
