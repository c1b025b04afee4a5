"""A service started while its database is unreachable waits for it (within
FQ_STARTUP_DATABASE_WAIT_SECONDS) instead of exiting, and gives up with the error after that."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from kit.errors import database_unavailable
from services.router.main import create
from tests.infra import Broker, free_port, service_settings

pytestmark = pytest.mark.integration


async def test_a_service_waits_for_a_database_that_is_not_there_yet_then_gives_up(
        broker: Broker, run_dir: Path) -> None:
    port = free_port()  # nothing listens: connection refused, as during a restart
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    app = create(service_settings("router", broker.bootstrap, url, run_dir,
                                  startup_database_wait_seconds=2.0))
    runtime = app.state.runtime
    started = asyncio.get_running_loop().time()
    with pytest.raises(Exception) as failure:
        await runtime._migrate()
    waited = asyncio.get_running_loop().time() - started
    assert 2.0 <= waited < 10, f"gave up after {waited:.1f}s"
    assert database_unavailable(failure.value), repr(failure.value)
    await runtime.engine.dispose()


async def test_a_service_starts_once_the_database_answers(
        broker: Broker, database_url: str, run_dir: Path) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("needs a PostgreSQL server to stand in for")
    # A proxy port that refuses for a second, then forwards to the real server.
    port = free_port()
    url = database_url.replace("127.0.0.1:5432", f"127.0.0.1:{port}")
    app = create(service_settings("router", broker.bootstrap, url, run_dir,
                                  startup_database_wait_seconds=30.0))
    runtime = app.state.runtime

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", 5432)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    async def open_later() -> asyncio.Server:
        await asyncio.sleep(1.5)
        return await asyncio.start_server(forward, "127.0.0.1", port,
                                          family=socket.AF_INET)

    opener = asyncio.create_task(open_later())
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(runtime._migrate(), 30)
    assert asyncio.get_running_loop().time() - started >= 1.5  # it did wait
    server = await opener
    await runtime.engine.dispose()
    server.close()
