"""Run a job in one process only, however many replicas of a service run: the holder of a
PostgreSQL advisory lock does the work, the others wait to take over if it dies. Or share a
job's work among the replicas (`run_sharing`): the work is cut into shares, each share a lock
of the same kind held by one replica, every replica holding a fair part of them."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, PendingRollbackError
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
    async def lead_or_wait() -> None:
        async with engine.connect() as lock_conn, advisory_lock(lock_conn, name) as leader:
            if leader:
                await _while_holding(lock_conn, job, check_seconds)
                return
        liveness.beat()
        await sleep_unless(stopping, retry_seconds)

    await _retrying("leader job failed, retrying", name, lead_or_wait, stopping)


async def _retrying(failed: str, name: str, attempt: Callable[[], Awaitable[None]],
                    stopping: asyncio.Event) -> None:
    """Run `attempt` again and again until `stopping`, after a transient failure with a
    growing pause (logged as `failed`)."""
    backoff = 0.2
    while not stopping.is_set():
        try:
            await attempt()
            backoff = 0.2
        except TRANSIENT_ERRORS as exc:
            log.warning(failed, extra={"job": name, "error": repr(exc)[:300]})
            await sleep_unless(stopping, backoff)
            backoff = min(backoff * 2, 10.0)


async def _while_holding(lock_conn: AsyncConnection, job: Callable[[], Awaitable[None]],
                         check_seconds: float,
                         check: Callable[[], Awaitable[object]] | None = None) -> None:
    """Run `job` and check the lock's connection meanwhile (with `check`, which runs on it, or
    a bare query); whichever ends first ends both."""
    job_ended = asyncio.Event()

    async def watch() -> None:
        # Ends between two checks, never in the middle of one: a query cancelled half-way
        # would leave the connection (and the lock on it) in an unknown state.
        while not job_ended.is_set():
            await sleep_unless(job_ended, check_seconds)
            if not job_ended.is_set():
                await (check() if check else lock_conn.execute(text("SELECT 1")))

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


# The second key of the lock every replica sharing a job holds in shared mode, so that each
# can count the others; shares are the keys 0 … count - 1.
_MEMBER = -1
_SHARE_LOCKS = text("""
    SELECT objid::bigint AS key, pid = pg_backend_pid() AS mine FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 2
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND classid = hashtext(:name)::oid""")


@dataclass
class Shares:
    """A shared job's work cut into `count` shares, and the ones this replica holds. The job
    starts new work only for `owned`; `releasing` are still held, with no new work, until
    the job says they are idle; then another replica may take them."""

    count: int
    owned: frozenset[int] = frozenset()
    releasing: frozenset[int] = frozenset()

    @property
    def all_owned(self) -> bool:
        return len(self.owned) == self.count


async def run_sharing(engine: AsyncEngine, name: str, count: int,
                      job: Callable[[Shares], Awaitable[None]], stopping: asyncio.Event, *,
                      busy: Callable[[int], bool], check_seconds: float = 1.0) -> None:
    """Run `job` in every replica, each holding a fair part (count / replicas, rounded up) of
    the shares of `name`: a session advisory lock per share, on one connection per replica,
    checked and rebalanced every `check_seconds`. A share leaves a replica only once
    `busy(share)` is false, so no two replicas ever work on one share at once. A replica that
    dies loses its locks with its connection, and the others take its shares at their next
    check. On SQLite (one writer per file, no such locks) the one replica owns every share.
    Retries after transient failures until `stopping`, like `run_as_leader`."""
    shares = Shares(count)

    async def hold_and_run() -> None:
        try:
            async with engine.connect() as lock_conn:
                if lock_conn.dialect.name != "postgresql":
                    shares.owned = frozenset(range(count))
                    await _while_holding(lock_conn, lambda: job(shares), check_seconds)
                    return
                try:
                    await lock_conn.execute(text(
                        "SELECT pg_advisory_lock_shared(hashtext(:name), :member)"),
                        {"name": name, "member": _MEMBER})
                    await _rebalance(lock_conn, name, shares, busy)
                    await _while_holding(lock_conn, lambda: job(shares), check_seconds,
                                         lambda: _rebalance(lock_conn, name, shares, busy))
                finally:
                    shares.owned = shares.releasing = frozenset()
                    await _unlock_all(lock_conn, name)
        finally:
            shares.owned = shares.releasing = frozenset()

    await _retrying("shared job failed, retrying", name, hold_and_run, stopping)


async def _rebalance(conn: AsyncConnection, name: str, shares: Shares,
                     busy: Callable[[int], bool]) -> None:
    """Hold this replica's fair part of the shares: release the extra ones that are idle,
    take free ones while short."""
    rows = (await conn.execute(_SHARE_LOCKS, {"name": name})).all()
    member = _MEMBER & 0xFFFFFFFF  # pg_locks shows the key as an unsigned oid
    replicas = max(1, sum(1 for row in rows if row.key == member))
    taken = {row.key for row in rows if row.key != member and not row.mine}
    fair = -(-shares.count // replicas)
    held = sorted(shares.owned | shares.releasing)
    before = shares.owned
    shares.owned = frozenset(held[:fair])
    shares.releasing = frozenset(held[fair:])
    for share in sorted(shares.releasing):
        if not busy(share):
            await conn.execute(text("SELECT pg_advisory_unlock(hashtext(:name), :share)"),
                               {"name": name, "share": share})
            shares.releasing -= {share}
    free = [s for s in range(shares.count) if s not in taken and s not in held]
    random.shuffle(free)  # replicas starting together do not all try the same share first
    for share in free:
        if len(shares.owned) + len(shares.releasing) >= fair:
            break
        got = (await conn.execute(text(
            "SELECT pg_try_advisory_lock(hashtext(:name), :share)"),
            {"name": name, "share": share})).scalar_one()
        if got:
            shares.owned |= {share}
    if shares.owned != before:
        log.info("shares changed", extra={"job": name, "owned": sorted(shares.owned),
                                           "replicas": replicas})


async def _unlock_all(conn: AsyncConnection, name: str) -> None:
    """Give back every lock of the session, or close the connection, which does the same:
    a pooled connection would otherwise keep them."""
    if conn.invalidated:
        return
    try:
        await conn.execute(text("SELECT pg_advisory_unlock_all()"))
    except (DBAPIError, PendingRollbackError):
        log.warning("shares not released: closing their connection", extra={"job": name})
        await conn.invalidate()
