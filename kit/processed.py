"""Forget processed-event keys once no redelivery can bring their event back. The keys make
a redelivered event harmless; kept forever they would grow with every event the service
ever handled. A key may go when its event can no longer arrive again: after the broker's
retention (Kafka keeps messages 7 days by default) and the outbox's replay window."""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import Table, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kit.leader import run_as_leader, sleep_unless

log = logging.getLogger(__name__)

PRUNE_CHUNK = 5000  # keys deleted per transaction: short locks, bounded WAL per step


class ProcessedKeyPruner:
    """A leader job: every `every_seconds`, delete the keys older than the retention."""

    def __init__(self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession],
                 table: Table, retention_seconds: float, every_seconds: float = 3600.0) -> None:
        self.engine = engine
        self.sessions = sessions
        self.table = table
        self.retention_seconds = retention_seconds
        self.every_seconds = every_seconds
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        if self.retention_seconds <= 0:
            return  # kept forever, as configured
        await run_as_leader(self.engine, f"fengqiao-prune-{self.table.name}", self._prune_often,
                            self._stopping)

    async def _prune_often(self) -> None:
        while not self._stopping.is_set():
            pruned = await self.prune(time.time() - self.retention_seconds)
            if pruned:
                log.info("forgot old processed-event keys",
                         extra={"table": self.table.name, "keys": pruned})
            await sleep_unless(self._stopping, self.every_seconds)

    async def prune(self, cutoff: float) -> int:
        """Delete the keys processed before `cutoff` (Unix time), a chunk at a time."""
        keys = self.table.c
        total = 0
        while not self._stopping.is_set():
            old = (select(keys.consumer, keys.event_id).where(keys.processed_at < cutoff)
                   .limit(PRUNE_CHUNK))
            async with self.sessions() as session, session.begin():
                result = await session.execute(delete(self.table).where(
                    tuple_(keys.consumer, keys.event_id).in_(old)))
            deleted = int(getattr(result, "rowcount", 0) or 0)
            total += deleted
            if deleted < PRUNE_CHUNK:
                break
        return total
