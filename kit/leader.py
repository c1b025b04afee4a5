"""Run a job in one process only, however many replicas of a service run: the holder of a
PostgreSQL advisory lock does the work, the others wait to take over if it dies."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kit import liveness
from kit.consumer import TRANSIENT_ERRORS
from kit.db import advisory_lock

log = logging.getLogger(__name__)


async def run_as_leader(engine: AsyncEngine, name: str, job: Callable[[], Awaitable[None]],
                        stopping: asyncio.Event, retry_seconds: float = 2.0,
                        check_seconds: float = 1.0) -> None:
    """Run `job` while holding lock `name`; retry after transient failures until `stopping`.
    The lock lives as long as its connection: if that drops (a database restart), the job
    is stopped within `check_seconds`, since another replica may be leader by then.
    Waiting while another replica leads is progress (kit.liveness); while leading, the job
    beats for itself."""
    backoff = 0.2
    while not stopping.is_set():
        try:
            async with engine.connect() as lock_conn, advisory_lock(lock_conn, name) as leader:
                if leader:
                    await _while_holding(lock_conn, job, check_seconds)
                    backoff = 0.2
                    continue
            liveness.beat()
            await sleep_unless(stopping, retry_seconds)
        except TRANSIENT_ERRORS as exc:
            log.warning("leader job failed, retrying", extra={"job": name,
                                                              "error": repr(exc)[:300]})
            await sleep_unless(stopping, backoff)
            backoff = min(backoff * 2, 10.0)


async def _while_holding(lock_conn: AsyncConnection, job: Callable[[], Awaitable[None]],
                         check_seconds: float) -> None:
    """Run `job` and check the lock's connection meanwhile; whichever ends first ends both."""
    job_ended = asyncio.Event()

    async def watch() -> None:
        # Ends between two checks, never in the middle of one: a query cancelled half-way
        # would leave the connection (and the lock on it) in an unknown state.
        while not job_ended.is_set():
            await sleep_unless(job_ended, check_seconds)
            if not job_ended.is_set():
                await lock_conn.execute(text("SELECT 1"))

    work = asyncio.ensure_future(job())
    watchdog = asyncio.ensure_future(watch())
    try:
        await asyncio.wait({work, watchdog}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        job_ended.set()
        work.cancel()
        # Wait for both to end, and take both outcomes (none is left "never retrieved").
        outcomes = await asyncio.gather(work, watchdog, return_exceptions=True)
    # The job's own failure says more than the lost connection that often comes with it.
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome


async def sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep `seconds`, or less if `stopping` is set meanwhile."""
    try:
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
    except TimeoutError:
        pass
