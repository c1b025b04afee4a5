"""The one consumer loop: getmany → decode → effects and processed keys in one transaction
→ dead letters → commit offsets. Offsets are committed only after the effect is durable, and
only to the broker the batch came from: a broker that lost its data (a new epoch) means a new
consumer that starts over, and takes only the records its producers sent to this broker
(kit.bus.BrokerEpoch)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord
from pydantic import BaseModel, ValidationError
from sqlalchemy import Table, select
from sqlalchemy.exc import DataError, DBAPIError, OperationalError, PendingRollbackError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.envelope import CloudEvent
from contracts.topics import dlq
from kit import liveness
from kit.bus import EPOCH_HEADER, Producer
from kit.metrics import CONSUMER_LAG, DLQ_MESSAGES, MESSAGES_CONSUMED

log = logging.getLogger(__name__)

# Failures of infrastructure, not of the message: retry the batch, never dead-letter it.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError, DBAPIError, PendingRollbackError, KafkaError, OSError,
    asyncio.TimeoutError)


def refused_by_the_database(exc: BaseException) -> bool:
    """The database refused the data itself (SQLSTATE class 22, data exception: a value
    longer than its column, a NUL in text, a number out of range). No retry can succeed: it
    is the message's fault, not the infrastructure's. (asyncpg's errors reach SQLAlchemy
    as a plain DBAPIError with the SQLSTATE on .orig; other drivers raise DataError.)"""
    if isinstance(exc, DataError):
        return True
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, DBAPIError) and str(sqlstate or "").startswith("22")


CLOSE_TIMEOUT_SECONDS = 20.0


class PoisonMessage(Exception):
    """Raised by a handler for a message that can never be processed; it goes to `.dlq`."""


class BrokerReplaced(Exception):
    """The broker lost its data while a batch was in flight: its positions mean nothing on the
    new one. Its effects stay (the processed keys make the replay of it harmless)."""


@dataclass(frozen=True)
class Delivery:
    """A decoded message with where it came from."""

    topic: str
    partition: int
    offset: int
    key: str | None
    message: BaseModel
    raw_value: bytes
    payload: Any = None  # the JSON as decoded, before validation: reuse it, don't re-dump

    @property
    def idempotency_key(self) -> str:
        if isinstance(self.message, CloudEvent):
            return self.message.id
        return f"{self.topic}/{self.partition}/{self.offset}"


Handler = Callable[[AsyncSession, Delivery], Awaitable[None]]
BatchHandler = Callable[[AsyncSession, list[Delivery]], Awaitable[None]]


def data_field_in(event_type: str, path: tuple[str, ...], wanted: Collection[str],
                  known: Collection[str], *, optional: bool = False) -> Callable[[Any], bool]:
    """A `relevant` test on an event's JSON: False when it is an event of `event_type` whose
    `data.<path>` is one of the `known` values that is not `wanted`, or (for an `optional`
    field) absent or null; True otherwise, including for anything malformed or of another
    type, so that such a message is still validated and dead-lettered with its reason."""
    unwanted = frozenset(known) - frozenset(wanted)

    def relevant(payload: Any) -> bool:
        if not isinstance(payload, dict) or payload.get("type") != event_type:
            return True
        node = payload.get("data")
        if not isinstance(node, dict):
            return True
        for key in path:
            if not isinstance(node, dict):
                return True
            node = node.get(key)
            if node is None:
                return not optional
        return not (isinstance(node, str) and node in unwanted)
    return relevant


@dataclass(frozen=True)
class Subscription:
    """A topic, the model its messages decode to, and the handler of their effects: `handle`
    per message, or `handle_batch` for a run of messages in one call (fewer round trips on
    hot paths). Both run inside the batch's transaction. A batch's messages are applied
    topic by topic in the order of the loop's subscriptions (each topic's in partition
    order): list first the topic whose events come first in a case's life."""

    topic: str
    model: type[BaseModel]
    handle: Handler | None = None
    handle_batch: BatchHandler | None = None
    # Called with the message's JSON, parsed but not validated: messages it returns False for
    # have no effect here and are committed without being validated, without a transaction
    # and without a processed key (most lifecycle events, for the router). Validating
    # messages only to drop them was most of the cost of following a busy topic.
    relevant: Callable[[Any], bool] | None = None
    # The same test on a header, before anything is parsed: (name, the values that may be
    # relevant). A message carrying the header with another value is skipped as `relevant`
    # would skip it; one without the header (older records, other producers) is parsed and
    # tested by `relevant` as before. Its producers must set it to what `relevant` would find.
    relevant_header: tuple[str, frozenset[bytes]] | None = None

    def __post_init__(self) -> None:
        if (self.handle is None) == (self.handle_batch is None):
            raise ValueError(f"{self.topic}: give exactly one of handle and handle_batch")


def _relevant_by_header(record: ConsumerRecord, sub: Subscription) -> bool:
    """False when the record says, in the subscription's header, that it is of no concern
    here; True when it says otherwise or does not say (then `relevant` decides)."""
    assert sub.relevant_header is not None
    name, wanted = sub.relevant_header
    for header, value in record.headers or ():
        if header == name:
            return bytes(value) in wanted
    return True


class _DrainOnRevoke(ConsumerRebalanceListener):
    """Let an in-flight batch finish and commit before its partitions move elsewhere, and drop
    the lag series of partitions this process no longer owns."""

    def __init__(self, lock: asyncio.Lock, group: str) -> None:
        self._lock = lock
        self._group = group

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self._lock:
            pass
        for tp in revoked:
            try:
                CONSUMER_LAG.remove(self._group, tp.topic, str(tp.partition))
            except KeyError:
                pass

    async def on_partitions_assigned(self, assigned: Any) -> None:
        pass


class ConsumerLoop:
    """Consume `subscriptions` in consumer group `group`, at least once, with idempotent effects."""

    def __init__(self, *, bootstrap: str, group: str, subscriptions: Sequence[Subscription],
                 sessions: async_sessionmaker[AsyncSession], processed: Table,
                 producer: Producer, max_records: int = 500, poll_ms: int = 200,
                 session_timeout_ms: int = 10000, max_message_bytes: int = 1_000_000,
                 after_commit: Callable[[], None] | None = None) -> None:
        self.group = group
        self.subscriptions = {s.topic: s for s in subscriptions}
        self._rank = {s.topic: rank for rank, s in enumerate(subscriptions)}
        self.sessions = sessions
        self.processed = processed
        self.producer = producer
        self.max_records = max_records
        self.poll_ms = poll_ms
        self.after_commit = after_commit
        self._batch_lock = asyncio.Lock()
        self.bootstrap = bootstrap
        self.session_timeout_ms = session_timeout_ms
        self.max_message_bytes = max_message_bytes
        self._stopping = asyncio.Event()

    def _new_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False,
            auto_offset_reset="earliest", client_id=self.group,
            max_poll_records=self.max_records, session_timeout_ms=self.session_timeout_ms,
            # How long the broker may hold a fetch that found nothing. Tansu seems not to
            # answer it early when messages arrive meanwhile: cutting aiokafka's 500 ms to the
            # poll interval took the median intake → routed at 500 cases/s from about 320 to
            # 180 ms (docs/performance.md).
            fetch_max_wait_ms=self.poll_ms,
            heartbeat_interval_ms=max(500, self.session_timeout_ms // 5),
            max_poll_interval_ms=300000, metadata_max_age_ms=30000,
        )

    async def run(self) -> None:
        """Run until stop() is called; a transient failure backs off and retries the batch, and
        a broker that lost its data means starting over with a new consumer."""
        for topic in self.subscriptions:
            # Export every dead-letter series from the start, so a first one is an increase.
            DLQ_MESSAGES.labels(topic=dlq(topic)).inc(0)
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                await self._consume_from_this_broker()
                backoff = 0.2
            except TRANSIENT_ERRORS as exc:
                # The broker is unreachable while (re)starting the consumer.
                log.warning("consumer could not start, will retry",
                            extra={"group": self.group, "error": repr(exc)[:300]})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _consume_from_this_broker(self) -> None:
        """Consume until stop() or until the broker turns out to be a new one (another epoch)."""
        epoch = await self.producer.epoch.current()
        # aiokafka clients must be created inside the running event loop.
        self.consumer = self._new_consumer()
        backoff = 0.2
        lag_recorded = 0.0
        try:
            await self.consumer.start()
            self.consumer.subscribe(list(self.subscriptions), listener=_DrainOnRevoke(
                self._batch_lock, self.group))
            while not self._stopping.is_set():
                batch = await self.consumer.getmany(timeout_ms=self.poll_ms,
                                                    max_records=self.max_records)
                now = time.monotonic()
                if now - lag_recorded >= 1.0:
                    # Also when idle: a lag that stops being updated would lie.
                    lag_recorded = now
                    try:
                        # position() waits for the broker: never let the gauge stall the loop.
                        await asyncio.wait_for(self._record_lag(), timeout=2.0)
                    except TimeoutError:
                        pass
                    if not batch and await self._broker_replaced(epoch):
                        return
                if not batch:
                    liveness.beat()  # idle is progress: nothing is waiting
                    continue
                try:
                    async with self._batch_lock:
                        await self._process(batch, epoch)
                    liveness.beat()
                    backoff = 0.2
                except BrokerReplaced:
                    log.warning("the broker lost its data; starting over on the new one",
                                extra={"group": self.group})
                    return
                except TRANSIENT_ERRORS as exc:
                    log.warning("batch failed, will retry", extra={"group": self.group,
                                                                   "error": repr(exc)[:300]})
                    self._rewind(batch)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
        finally:
            await self._close(self.consumer)

    def stop(self) -> None:
        self._stopping.set()

    async def _close(self, consumer: AIOKafkaConsumer) -> None:
        """Stop a consumer, however the broker is doing. aiokafka's stop() can raise the
        CancelledError of its own coordination task when the broker died meanwhile (the loop
        would then end for good, as if cancelled), or wait on a broker that is gone."""
        try:
            await asyncio.wait_for(consumer.stop(), timeout=CLOSE_TIMEOUT_SECONDS)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this loop is being cancelled: let it
            log.warning("consumer stop was interrupted; carrying on", extra={"group": self.group})
        except TimeoutError:
            log.warning("consumer did not stop in time; carrying on", extra={"group": self.group})

    async def _broker_replaced(self, epoch: int) -> bool:
        """Whether the broker is a new one, checked while idle (so that the consumer starts
        over before the replay arrives); False when it cannot tell right now."""
        try:
            replaced = await self.producer.epoch.current() != epoch
        except TRANSIENT_ERRORS:
            return False
        if replaced:
            log.warning("the broker lost its data; starting over on the new one",
                        extra={"group": self.group})
        return replaced

    @staticmethod
    def _sent_to_another_broker(record: ConsumerRecord, epoch: int) -> bool:
        """A record stamped with another epoch crossed a broker restart: its relay publishes
        it again after the replay of older rows, and taking this copy first would put it
        ahead of them. Records without the stamp (other producers) are taken as they come."""
        for name, value in record.headers or ():
            if name == EPOCH_HEADER:
                return bytes(value) != str(epoch).encode()
        return False

    def _rewind(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Go back to the first message of the failed batch (getmany would otherwise move on,
        and seek_to_committed cannot help before the first commit)."""
        assigned = self.consumer.assignment()
        for tp, records in batch.items():
            if tp in assigned and records:
                self.consumer.seek(tp, records[0].offset)

    async def _process(self, batch: dict[TopicPartition, list[ConsumerRecord]],
                       epoch: int) -> None:
        if await self.producer.epoch.current() != epoch:
            # Fetched from a new broker at positions that were the old one's.
            raise BrokerReplaced
        deliveries: list[Delivery] = []
        undecodable: list[tuple[ConsumerRecord, str]] = []
        crossed = 0
        for records in batch.values():
            for record in records:
                if self._sent_to_another_broker(record, epoch):
                    crossed += 1
                    continue
                decoded = self._decode(record)
                if isinstance(decoded, str):
                    undecodable.append((record, decoded))
                elif decoded is not None:
                    deliveries.append(decoded)
        if crossed:
            log.warning("skipped records sent before the broker restarted (they come again "
                        "after the replay)", extra={"group": self.group, "records": crossed})
        if deliveries:
            await self._apply(deliveries)
        # After the effects: a batch retried after a transient failure would otherwise
        # dead-letter its undecodable messages once per attempt.
        for record, reason in undecodable:
            await self._dead_letter(record, reason)
        for tp, records in batch.items():
            MESSAGES_CONSUMED.labels(group=self.group, topic=tp.topic).inc(len(records))
        if await self.producer.epoch.current() != epoch:
            # These offsets are the old broker's: committed to the new one, they would skip
            # its first messages (Tansu takes a commit from a member that rejoined).
            raise BrokerReplaced
        await self._commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
        if self.after_commit:
            self.after_commit()

    def _decode(self, record: ConsumerRecord) -> Delivery | str | None:
        """The decoded delivery, the reason it cannot be decoded, or None when the message
        is of no concern here (the subscription's `relevant`)."""
        sub = self.subscriptions[record.topic]
        if record.value is None:
            return "empty message value"
        if len(record.value) > self.max_message_bytes:
            return (f"oversized: {len(record.value)} bytes, over the limit of "
                    f"{self.max_message_bytes}")
        if sub.relevant_header is not None and not _relevant_by_header(record, sub):
            return None
        try:
            payload = orjson.loads(record.value)
        except orjson.JSONDecodeError as exc:
            return f"not JSON: {exc}"
        if sub.relevant is not None and not sub.relevant(payload):
            return None
        try:
            message = sub.model.model_validate(payload)
        except ValidationError as exc:
            errors = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}"
                               for e in exc.errors()[:20])
            return f"schema violation ({sub.model.__name__}): {errors}"
        key = record.key.decode(errors="replace") if record.key else None
        return Delivery(record.topic, record.partition, record.offset, key, message,
                        record.value, payload)

    async def _apply(self, deliveries: list[Delivery]) -> None:
        """All effects in one transaction; if a handler fails, isolate the culprit."""
        try:
            async with self.sessions() as session, session.begin():
                await self._apply_in(session, deliveries)
            return
        except TRANSIENT_ERRORS as exc:
            if not refused_by_the_database(exc):
                raise
            log.info("batch refused by the database; retrying its messages one by one",
                     extra={"group": self.group})
        except Exception:  # noqa: BLE001 - a handler bug or poison: find which message
            log.info("batch failed; retrying its messages one by one", extra={"group": self.group})
        for delivery in deliveries:
            await self._apply_one_or_dead_letter(delivery)

    async def _apply_one_or_dead_letter(self, delivery: Delivery) -> None:
        try:
            async with self.sessions() as session, session.begin():
                await self._apply_in(session, [delivery])
        except Exception as exc:
            if isinstance(exc, TRANSIENT_ERRORS) and not refused_by_the_database(exc):
                raise
            log.exception("handler failed", extra={"topic": delivery.topic,
                                                   "offset": delivery.offset})
            await self.producer.send_dead_letter(
                delivery.topic, delivery.key.encode() if delivery.key else None,
                delivery.raw_value, f"{type(exc).__name__}: {exc}")

    async def _apply_in(self, session: AsyncSession, deliveries: list[Delivery]) -> None:
        keys = [d.idempotency_key for d in deliveries]
        seen = set((await session.execute(
            select(self.processed.c.event_id).where(
                self.processed.c.consumer == self.group, self.processed.c.event_id.in_(keys))
        )).scalars())
        fresh: list[Delivery] = []
        for d in deliveries:
            if d.idempotency_key not in seen:
                seen.add(d.idempotency_key)  # the same event twice within one batch
                fresh.append(d)
        # Topic by topic in the subscriptions' order: a fetch returns partitions in no
        # particular order, and notify, say, taking a case's closure before its report (at
        # start-up, catching up) would not know the case is a 12345 order with a callback.
        # Runs of one topic go to a batch handler together; within a topic order is kept.
        fresh.sort(key=lambda d: self._rank[d.topic])
        for topic, run in itertools.groupby(fresh, key=lambda d: d.topic):
            sub = self.subscriptions[topic]
            if sub.handle_batch is not None:
                await sub.handle_batch(session, list(run))
            else:
                assert sub.handle is not None
                for d in run:
                    await sub.handle(session, d)
        if fresh:
            now = time.time()
            await session.execute(self.processed.insert(), [
                {"consumer": self.group, "event_id": d.idempotency_key, "processed_at": now}
                for d in fresh])

    async def _dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        await self.producer.send_dead_letter(record.topic, record.key, record.value, reason,
                                             list(record.headers or ()))

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        assigned = self.consumer.assignment()
        still_ours = {tp: off for tp, off in offsets.items() if tp in assigned}
        if not still_ours:
            return
        try:
            await self.consumer.commit(still_ours)
        except (CommitFailedError, IllegalStateError) as exc:
            # Partitions moved during the batch: the new owner redelivers, and the
            # processed-event keys make that harmless.
            log.info("commit after rebalance failed; will be redelivered",
                     extra={"group": self.group, "error": repr(exc)[:200]})

    async def _record_lag(self) -> None:
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = await self.consumer.position(tp)
            except (IllegalStateError, KafkaError):
                continue
            CONSUMER_LAG.labels(group=self.group, topic=tp.topic,
                                partition=str(tp.partition)).set(max(0, high - position))
