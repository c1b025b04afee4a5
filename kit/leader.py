"""Run a job in one process only, however many replicas of a service run: the holder of a
PostgreSQL advisory lock does the work, the others wait to take over if it dies."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from kit.consumer import TRANSIENT_ERRORS
from kit.db import advisory_lock

log = logging.getLogger(__name__)


async def run_as_leader(engine: AsyncEngine, name: str, job: Callable[[], Awaitable[None]],
                        stopping: asyncio.Event, retry_seconds: float = 2.0) -> None:
    """Run `job` while holding lock `name`; retry after transient failures until `stopping`."""
    backoff = 0.2
    while not stopping.is_set():
        try:
            async with engine.connect() as lock_conn, advisory_lock(lock_conn, name) as leader:
                if leader:
                    await job()
                    backoff = 0.2
                    continue
            await _sleep_unless(stopping, retry_seconds)
        except TRANSIENT_ERRORS as exc:
            log.warning("leader job failed, retrying", extra={"job": name,
                                                              "error": repr(exc)[:300]})
            await _sleep_unless(stopping, backoff)
            backoff = min(backoff * 2, 10.0)


async def _sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
    except TimeoutError:
        pass
