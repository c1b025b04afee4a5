"""Transactional outbox: events are written in the same transaction as the state they
describe, and a relay publishes them in order and deletes them once the broker has them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Table, delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from contracts.envelope import CloudEvent
from kit.bus import CE_CONTENT_TYPE, Producer, Record, encode
from kit.consumer import TRANSIENT_ERRORS
from kit.leader import run_as_leader
from kit.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISHED

log = logging.getLogger(__name__)


def outbox_row(topic: str, event: CloudEvent, key: str | None = None,
               dumped: dict[str, Any] | None = None) -> dict[str, object]:
    """The row that publishes `event` to `topic`, keyed by its subject (the case id).
    `dumped` is the event's model_dump(mode="json") when the caller already made it."""
    value = orjson.dumps(dumped) if dumped is not None else encode(event)
    return {"topic": topic, "key": key or event.subject, "value": value,
            "headers": None, "created_at": time.time()}


async def add_to_outbox(session: AsyncSession, outbox: Table,
                        rows: Sequence[dict[str, object]]) -> None:
    """Queue rows in the caller's transaction; they publish only if it commits."""
    if rows:
        await session.execute(outbox.insert(), list(rows))


class OutboxRelay:
    """Publishes a service's outbox. One relay per service holds the lock, so rows of one
    case are published in the order they were written, whatever the number of replicas."""

    def __init__(self, *, service: str, engine: AsyncEngine,
                 sessions: async_sessionmaker[AsyncSession], outbox: Table, producer: Producer,
                 batch: int = 500, poll_seconds: float = 0.5) -> None:
        self.service = service
        self.engine = engine
        self.sessions = sessions
        self.outbox = outbox
        self.producer = producer
        self.batch = batch
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def wake(self) -> None:
        """Publish now rather than at the next poll: call after committing outbox rows."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        await run_as_leader(self.engine, f"fengqiao-outbox-{self.service}", self._relay,
                            self._stopping)

    async def _relay(self) -> None:
        while not self._stopping.is_set():
            published = await self.publish_once()
            if published < self.batch:
                await self._sleep(self.poll_seconds)

    async def watch_backlog(self, every: float = 2.0) -> None:
        """Export the backlog and the age of its oldest row, in every replica and whether or
        not the broker is reachable: an outage is exactly when they matter."""
        while not self._stopping.is_set():
            try:
                await self._update_gauges()
            except TRANSIENT_ERRORS as exc:
                log.warning("outbox gauges not updated", extra={"error": repr(exc)[:200]})
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=every)
            except TimeoutError:
                pass

    async def publish_once(self) -> int:
        """Publish up to one batch of the oldest rows; returns how many were published."""
        async with self.sessions() as session:
            rows = (await session.execute(
                select(self.outbox).order_by(self.outbox.c.id).limit(self.batch))).all()
        if not rows:
            return 0
        await self.producer.send_all([
            Record(topic=r.topic, value=r.value, key=r.key,
                   headers=[("content-type", CE_CONTENT_TYPE)]) for r in rows])
        async with self.sessions() as session, session.begin():
            await session.execute(delete(self.outbox).where(
                self.outbox.c.id.in_([r.id for r in rows])))
        OUTBOX_PUBLISHED.labels(service=self.service).inc(len(rows))
        return len(rows)

    async def _update_gauges(self) -> None:
        now = time.time()
        async with self.sessions() as session:
            count, oldest = (await session.execute(
                select(func.count(), func.min(self.outbox.c.created_at)))).one()
        OUTBOX_BACKLOG.labels(service=self.service).set(count)
        OUTBOX_OLDEST_AGE.labels(service=self.service).set(now - oldest if oldest else 0)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass
        self._wake.clear()
