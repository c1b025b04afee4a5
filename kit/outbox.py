"""Transactional outbox: events are written in the same transaction as the state they
describe, and a relay publishes them in order. Published rows are kept for a while with the
broker epoch they went to, so that a broker which lost its data (the embedded Tansu after a
restart) gets every one of them again, in the original order, before anything newer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
)
from sqlalchemy import Row, Table, case, delete, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from contracts.envelope import CloudEvent
from kit.bus import CE_CONTENT_TYPE, EPOCH_HEADER, Producer, Record, encode
from kit.consumer import TRANSIENT_ERRORS
from kit.leader import run_as_leader, sleep_unless
from kit.metrics import (
    OUTBOX_BACKLOG,
    OUTBOX_FAILED_ROWS,
    OUTBOX_OLDEST_AGE,
    OUTBOX_PUBLISHED,
    OUTBOX_SET_ASIDE,
)
from kit.tables import RECORD_COLUMNS

log = logging.getLogger(__name__)

PRUNE_CHUNK = 5000
# Errors that say the broker will never take this record, whatever the retries.
REFUSED_RECORD_ERRORS = (RecordTooLargeError, MessageSizeTooLargeError, InvalidTopicError,
                         CorruptRecordException, TopicAuthorizationFailedError)
# A row that failed this many times in a row while others went through is set aside.
STRIKES_BEFORE_SET_ASIDE = 3
Publishable = Row[Any, Any, Any, Any, Any]  # id, topic, key, value, headers


def outbox_row(topic: str, event: CloudEvent, key: str | None = None,
               dumped: dict[str, Any] | None = None,
               headers: dict[str, str] | None = None) -> dict[str, object]:
    """The row that publishes `event` to `topic`, keyed by its subject (the case id).
    `dumped` is the event's model_dump(mode="json") when the caller already made it;
    `headers` are published with the record, after the relay's own (content type, epoch)."""
    value = orjson.dumps(dumped) if dumped is not None else encode(event)
    return {"topic": topic, "key": key or event.subject, "value": value,
            "headers": headers, "created_at": time.time()}


class _Headers:
    """A batch's record headers: the relay's own, then each row's (a name → text mapping, or
    none). Rows carry few distinct ones (a routed event's correction kind), built once each."""

    def __init__(self, base: list[tuple[str, bytes]]) -> None:
        self.base = base
        self._made: dict[tuple[tuple[str, object], ...], list[tuple[str, bytes]]] = {}

    def of(self, row: Publishable) -> list[tuple[str, bytes]]:
        own = row.headers
        if not own:
            return self.base
        items = tuple(own.items())
        made = self._made.get(items)
        if made is None:
            made = self._made[items] = self.base + [
                (name, str(value).encode()) for name, value in items]
        return made


async def add_to_outbox(session: AsyncSession, outbox: Table,
                        rows: Sequence[dict[str, object]]) -> None:
    """Queue rows in the caller's transaction; they publish only if it commits."""
    if rows:
        await session.execute(outbox.insert(), list(rows))


class OutboxRelay:
    """Publishes a service's outbox. One relay per service holds the lock, so rows of one
    case are published in the order they were written, whatever the number of replicas.

    Before each batch it reads the broker's epoch (kit.bus.BrokerEpoch). When the epoch is not
    the one its kept rows went to, the broker has lost them: it marks where the replay starts
    and publishes every kept row again, oldest first, then carries on with new rows. Consumers
    are idempotent, so a replay of what they already had costs time, never a double effect.
    With `retention_seconds` 0 (or no `published` table) rows are deleted once published, as a
    durable Kafka allows."""

    def __init__(self, *, service: str, engine: AsyncEngine,
                 sessions: async_sessionmaker[AsyncSession], outbox: Table, producer: Producer,
                 batch: int = 500, poll_seconds: float = 0.5, published: Table | None = None,
                 retention_seconds: float = 0.0, prune_every_seconds: float = 30.0) -> None:
        self.service = service
        self.engine = engine
        self.sessions = sessions
        self.outbox = outbox
        self.producer = producer
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.published = published if retention_seconds > 0 else None
        self.retention_seconds = retention_seconds
        self.prune_every_seconds = prune_every_seconds
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        # The epoch this process last published to, whether this leader term has looked for
        # kept rows to replay, and how far a replay has come.
        self._epoch: int | None = None
        self._looked = False
        self._replayed_up_to: int | None = None
        self._pruned_at = 0.0
        # Failed attempts of rows that failed while others in their batch went through.
        self._strikes: dict[int, int] = {}
        OUTBOX_SET_ASIDE.labels(service=service)
        OUTBOX_FAILED_ROWS.labels(service=service).set(0)

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
        # Another replica may have led meanwhile: the kept rows' epochs tell what to replay.
        self._looked = False
        while not self._stopping.is_set():
            published = await self.publish_once()
            await self._prune_when_due()
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
            await sleep_unless(self._stopping, every)

    async def publish_once(self) -> int:
        """Publish up to one batch, replayed rows first; returns how many were published."""
        epoch = await self.producer.epoch.current()
        if epoch != self._epoch or not self._looked:
            await self._enter(epoch)
        replaying, rows = await self._next_rows(epoch)
        if not rows:
            return 0
        headers = _Headers([("content-type", CE_CONTENT_TYPE),
                            (EPOCH_HEADER, str(epoch).encode())])
        errors = await self.producer.send_each([
            Record(topic=r.topic, value=r.value, key=r.key, headers=headers.of(r)) for r in rows])
        if await self.producer.epoch.current() != epoch:
            # The broker was replaced while these were on their way: some may have reached
            # the new one, ahead of older rows. Leave them as they were: they go again after
            # the replay, and consumers skip the copies stamped with the old epoch.
            return 0
        sent = [r.id for r, error in zip(rows, errors, strict=True) if error is None]
        set_aside = self._rows_to_set_aside(rows, errors, replaying)
        async with self.sessions() as session, session.begin():
            if replaying:
                assert self.published is not None
                await session.execute(update(self.published).where(
                    self.published.c.id.in_(sent)).values(broker_epoch=epoch))
            else:
                await self._move_published(session, sent, epoch)
                for row_id, reason in set_aside.items():
                    await session.execute(update(self.outbox).where(self.outbox.c.id == row_id)
                                          .values(set_aside_reason=reason[:1000],
                                                  set_aside_at=time.time()))
        for row_id, reason in set_aside.items():
            self._strikes.pop(row_id, None)
            log.error("outbox row set aside: it cannot be published",
                      extra={"service": self.service, "row_id": row_id, "reason": reason[:300]})
        OUTBOX_SET_ASIDE.labels(service=self.service).inc(len(set_aside))
        if replaying and sent:
            self._replayed_up_to = sent[-1]
        OUTBOX_PUBLISHED.labels(service=self.service).inc(len(sent))
        return len(sent)

    def _rows_to_set_aside(self, rows: Sequence[Publishable],
                           errors: Sequence[KafkaError | None], replaying: bool) -> dict[int, str]:
        """Which failed rows to give up on, with the reason; raise when the broker itself
        failed (nothing went through), so that the batch is tried again as it was.

        A row the broker refuses for what it is (too large, an invalid topic) is set aside at
        once; one that keeps failing while the rows around it are published, after
        STRIKES_BEFORE_SET_ASIDE attempts. The rest of the outbox carries on either way: one
        row never stops the relay."""
        failed = [(row.id, error) for row, error in zip(rows, errors, strict=True)
                  if error is not None]
        if not failed:
            return {}
        refused = {row_id: f"refused by the broker: {error!r}" for row_id, error in failed
                   if isinstance(error, REFUSED_RECORD_ERRORS)}
        if replaying or (len(failed) == len(rows) and not refused):
            raise failed[0][1]
        for row_id, error in failed:
            if row_id in refused:
                continue
            self._strikes[row_id] = self._strikes.get(row_id, 0) + 1
            if self._strikes[row_id] >= STRIKES_BEFORE_SET_ASIDE:
                refused[row_id] = (f"failed {self._strikes[row_id]} times while other rows "
                                   f"were published: {error!r}")
        return refused

    async def _move_published(self, session: AsyncSession, ids: list[int], epoch: int) -> None:
        """Move published rows from the outbox to the kept rows (or just delete them)."""
        if not ids:
            return
        if self.published is not None:
            kept = self.published
            # Ids are never reused, but a database from before that fix may hold a kept row
            # under an id the outbox hands out again: the newer row replaces it rather than
            # stopping the relay on a unique constraint.
            await session.execute(delete(kept).where(kept.c.id.in_(ids)))
            await session.execute(kept.insert().from_select(
                [*RECORD_COLUMNS, "published_at", "broker_epoch"],
                select(*(self.outbox.c[name] for name in RECORD_COLUMNS),
                       literal(time.time()), literal(epoch))
                .where(self.outbox.c.id.in_(ids))))
        await session.execute(delete(self.outbox).where(self.outbox.c.id.in_(ids)))

    async def _enter(self, epoch: int) -> None:
        """Start publishing to the broker of `epoch`: if kept rows went to another one, replay
        them from the oldest."""
        stale = 0
        if self.published is not None:
            async with self.sessions() as session:
                stale = (await session.execute(
                    select(func.count()).select_from(self.published)
                    .where(self.published.c.broker_epoch != epoch))).scalar_one()
            if stale:
                log.warning("the broker lost published events: publishing them again",
                            extra={"service": self.service, "rows": stale})
        self._replayed_up_to = 0 if stale else None
        self._epoch = epoch
        self._looked = True

    async def _next_rows(self, epoch: int) -> tuple[bool, Sequence[Publishable]]:
        """(replaying, rows): kept rows not yet on this broker, else the oldest new rows."""
        async with self.sessions() as session:
            if self._replayed_up_to is not None and self.published is not None:
                kept = self.published
                rows = (await session.execute(
                    select(kept.c.id, kept.c.topic, kept.c.key, kept.c.value, kept.c.headers)
                    .where(kept.c.id > self._replayed_up_to, kept.c.broker_epoch != epoch)
                    .order_by(kept.c.id).limit(self.batch))).all()
                if rows:
                    return True, rows
                log.info("replay to the new broker finished", extra={"service": self.service})
                self._replayed_up_to = None
            new = self.outbox
            return False, (await session.execute(
                select(new.c.id, new.c.topic, new.c.key, new.c.value, new.c.headers)
                .where(new.c.set_aside_reason.is_(None))
                .order_by(new.c.id).limit(self.batch))).all()

    async def _prune_when_due(self) -> None:
        """Delete kept rows older than the retention, oldest first, a chunk at a time."""
        if self.published is None or time.monotonic() - self._pruned_at < self.prune_every_seconds:
            return
        self._pruned_at = time.monotonic()
        kept = self.published
        cutoff = time.time() - self.retention_seconds
        while not self._stopping.is_set():
            # Rows are published in id order, so the oldest ids are the oldest rows: look at a
            # chunk of them through the primary key rather than scanning the whole table.
            async with self.sessions() as session, session.begin():
                chunk = (await session.execute(
                    select(kept.c.id, kept.c.published_at).order_by(kept.c.id)
                    .limit(PRUNE_CHUNK))).all()
                old = [row.id for row in chunk if row.published_at < cutoff]
                if old:
                    await session.execute(delete(kept).where(
                        kept.c.id <= old[-1], kept.c.published_at < cutoff))
            if len(chunk) < PRUNE_CHUNK or not old or old[-1] != chunk[-1].id:
                return

    async def _update_gauges(self) -> None:
        now = time.time()
        waiting = self.outbox.c.set_aside_reason.is_(None)
        async with self.sessions() as session:
            count, oldest, set_aside = (await session.execute(select(
                func.count(case((waiting, 1))),
                func.min(case((waiting, self.outbox.c.created_at))),
                func.count(case((~waiting, 1)))))).one()
        OUTBOX_BACKLOG.labels(service=self.service).set(count)
        OUTBOX_OLDEST_AGE.labels(service=self.service).set(now - oldest if oldest else 0)
        OUTBOX_FAILED_ROWS.labels(service=self.service).set(set_aside)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except TimeoutError:
            pass
        self._wake.clear()
