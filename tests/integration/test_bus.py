"""The kit against the real broker and database: outbox relay, consumer loop, dead letters,
idempotent redelivery."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import BaseModel
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from contracts.enums import Channel
from contracts.events import CaseReported, CaseReportedEvent
from kit.bus import DLQ_REASON_HEADER, EPOCH_HEADER, Producer, create_topics, encode
from kit.consumer import ConsumerLoop, Delivery, PoisonMessage, Subscription
from kit.db import create_engine, session_factory
from kit.outbox import OutboxRelay, add_to_outbox, outbox_row
from kit.tables import KitTables
from tests.infra import Broker

pytestmark = [pytest.mark.integration, pytest.mark.both_backends]

metadata = MetaData()
tables = KitTables.define(metadata, "kittest")
effects = Table("kittest_effects", metadata,
                Column("id", Integer, primary_key=True, autoincrement=True),
                Column("case_id", String(64), nullable=False))


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url)
    async with eng.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)
    yield eng
    await eng.dispose()


async def read_topic(bootstrap: str, topic: str, count: int, within: float = 15.0
                     ) -> list[tuple[bytes | None, bytes, dict[str, bytes]]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"reader-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    out: list[tuple[bytes | None, bytes, dict[str, bytes]]] = []
    try:
        deadline = asyncio.get_running_loop().time() + within
        while len(out) < count and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                out += [(r.key, r.value, dict(r.headers)) for r in records]
    finally:
        await consumer.stop()
    return out


def reported(case_id: str) -> CaseReportedEvent:
    return CaseReportedEvent.wrap(CaseReported(
        case_id=case_id, channel=Channel.HOTLINE_12345, external_id=case_id,
        received_at=datetime.now(UTC), text="测试"), source="test", subject=case_id)


async def test_outbox_rows_reach_the_topic_in_order_and_leave_the_table(
        broker: Broker, engine: AsyncEngine, producer: Producer, unique: str) -> None:
    topic = f"test.outbox.{unique}"
    sessions = session_factory(engine)
    events = [reported(f"C{unique}") for _ in range(5)]
    async with sessions() as session, session.begin():
        await add_to_outbox(session, tables.outbox, [outbox_row(topic, e) for e in events])
    relay = OutboxRelay(service=f"test{unique}", engine=engine, sessions=sessions,
                        outbox=tables.outbox, producer=producer)
    assert await relay.publish_once() >= 5
    got = await read_topic(broker.bootstrap, topic, 5)
    assert [orjson.loads(v)["id"] for _, v, _ in got] == [e.id for e in events]
    assert {k for k, _, _ in got} == {f"C{unique}".encode()}
    # Stamped with the broker's epoch, so that consumers can tell a send that crossed a restart.
    epoch = str(await producer.epoch.current()).encode()
    assert {h[EPOCH_HEADER] for _, _, h in got} == {epoch}
    async with sessions() as session:
        left = (await session.execute(select(func.count()).select_from(tables.outbox).where(
            tables.outbox.c.topic == topic))).scalar_one()
    assert left == 0


async def test_rolled_back_transaction_publishes_nothing(engine: AsyncEngine, unique: str
                                                         ) -> None:
    sessions = session_factory(engine)
    topic = f"test.rollback.{unique}"
    with pytest.raises(RuntimeError):
        async with sessions() as session, session.begin():
            await add_to_outbox(session, tables.outbox, [outbox_row(topic, reported("X"))])
            raise RuntimeError("effect failed")
    async with sessions() as session:
        left = (await session.execute(select(func.count()).select_from(tables.outbox).where(
            tables.outbox.c.topic == topic))).scalar_one()
    assert left == 0


class _Flaky:
    """A handler that records an effect; fails transiently the first `transient` calls and
    treats text '毒' as poison."""

    def __init__(self, transient: int = 0) -> None:
        self.transient = transient
        self.calls = 0

    async def __call__(self, session: AsyncSession, delivery: Delivery) -> None:
        self.calls += 1
        message = delivery.message
        assert isinstance(message, CaseReportedEvent)
        if self.transient > 0:
            self.transient -= 1
            raise OSError("database went away")
        if message.data.text == "毒":
            raise PoisonMessage("this report can never be handled")
        await session.execute(effects.insert().values(case_id=message.data.case_id))


async def _effect_count(engine: AsyncEngine, case_ids: list[str]) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(effects).where(
            effects.c.case_id.in_(case_ids)))).scalar_one())


async def _run_loop(broker: Broker, engine: AsyncEngine, producer: Producer, topic: str,
                    group: str, handler: _Flaky,
                    until: Callable[[], Awaitable[bool]], within: float = 20.0,
                    relevant: Callable[[BaseModel], bool] | None = None,
                    relevant_header: tuple[str, frozenset[bytes]] | None = None) -> None:
    """Run a consumer loop until `until()` is true (or `within` seconds), then stop it."""
    loop = ConsumerLoop(bootstrap=broker.bootstrap, group=group,
                        subscriptions=[Subscription(topic, CaseReportedEvent, handler,
                                                    relevant=relevant,
                                                    relevant_header=relevant_header)],
                        sessions=session_factory(engine), processed=tables.processed,
                        producer=producer, poll_ms=50, session_timeout_ms=6000)
    task = asyncio.create_task(loop.run())
    try:
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline and not await until():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    finally:
        loop.stop()
        await asyncio.wait_for(task, 20)


async def _publish(bootstrap: str, topic: str, values: list[bytes],
                   headers: list[tuple[str, bytes]] | None = None) -> None:
    raw = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await raw.start()
    try:
        for v in values:
            await raw.send_and_wait(topic, v, key=b"same-key", headers=headers)
    finally:
        await raw.stop()


async def _committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or {0}
        total = 0
        for p in partitions:
            total += await consumer.committed(TopicPartition(topic, p)) or 0
        return total
    finally:
        await consumer.stop()


async def _topic(broker: Broker, unique: str) -> str:
    topic = f"test.loop.{unique}"
    await create_topics(broker.bootstrap, [topic, topic + ".dlq"], partitions=1)
    return topic


async def test_poison_and_malformed_messages_go_to_dlq_and_the_loop_carries_on(
        broker: Broker, engine: AsyncEngine, producer: Producer, unique: str) -> None:
    topic = await _topic(broker, unique)
    good1, good2 = reported(f"A{unique}"), reported(f"B{unique}")
    poison = reported(f"P{unique}").model_copy(update={"data": reported(f"P{unique}").data
                                                       .model_copy(update={"text": "毒"})})
    await _publish(broker.bootstrap, topic, [
        encode(good1), b"{not json", orjson.dumps({"id": "x", "data": {"case_id": 1}}),
        encode(poison), encode(good2)])
    handler = _Flaky()
    ids = [f"A{unique}", f"B{unique}", f"P{unique}"]

    async def both_done() -> bool:
        return await _effect_count(engine, ids) >= 2

    await _run_loop(broker, engine, producer, topic, f"g-{unique}", handler, both_done)
    assert await _effect_count(engine, ids) == 2
    dead = await read_topic(broker.bootstrap, topic + ".dlq", 3)
    reasons = sorted(h[DLQ_REASON_HEADER].decode() for _, _, h in dead)
    assert len(reasons) == 3
    assert any(r.startswith("not JSON") for r in reasons)
    assert any(r.startswith("schema violation") for r in reasons)
    assert any("can never be handled" in r for r in reasons)
    assert await _committed(broker.bootstrap, f"g-{unique}", topic) == 5


async def test_offsets_are_committed_only_after_the_effect(
        broker: Broker, engine: AsyncEngine, producer: Producer, unique: str) -> None:
    topic = await _topic(broker, unique)
    event = reported(f"T{unique}")
    await _publish(broker.bootstrap, topic, [encode(event)])
    failing = _Flaky(transient=10_000)

    async def tried_a_few_times() -> bool:
        return failing.calls >= 3

    await _run_loop(broker, engine, producer, topic, f"g-{unique}", failing, tried_a_few_times)
    assert failing.calls >= 3
    assert await _effect_count(engine, [f"T{unique}"]) == 0
    assert await _committed(broker.bootstrap, f"g-{unique}", topic) == 0

    async def done() -> bool:
        return await _effect_count(engine, [f"T{unique}"]) == 1

    await _run_loop(broker, engine, producer, topic, f"g-{unique}", _Flaky(), done)
    assert await _effect_count(engine, [f"T{unique}"]) == 1
    assert await _committed(broker.bootstrap, f"g-{unique}", topic) == 1


async def test_a_redelivered_event_has_no_second_effect(
        broker: Broker, engine: AsyncEngine, producer: Producer, unique: str) -> None:
    topic = await _topic(broker, unique)
    event = reported(f"R{unique}")
    await _publish(broker.bootstrap, topic, [encode(event), encode(event)])
    handler = _Flaky()

    async def consumed_both() -> bool:
        return await _committed(broker.bootstrap, f"g-{unique}", topic) == 2

    await _run_loop(broker, engine, producer, topic, f"g-{unique}", handler, consumed_both)
    # Redelivery after a crash before commit: a new loop in the same group re-reads it all.
    await _publish(broker.bootstrap, topic, [encode(event)])

    async def consumed_three() -> bool:
        return await _committed(broker.bootstrap, f"g-{unique}", topic) == 3

    await _run_loop(broker, engine, producer, topic, f"g-{unique}", handler, consumed_three)
    assert await _effect_count(engine, [f"R{unique}"]) == 1


async def test_records_stamped_with_another_broker_epoch_are_skipped(
        broker: Broker, engine: AsyncEngine, producer: Producer, unique: str) -> None:
    """A relay's send that crossed a broker restart lands on the new broker stamped with the
    old epoch, ahead of the replay that brings it again: the consumer must not take it."""
    topic = await _topic(broker, unique)
    epoch = await producer.epoch.current()
    crossed, replayed, unstamped = (reported(f"{x}{unique}") for x in "XYZ")
    await _publish(broker.bootstrap, topic, [encode(crossed)],
                   headers=[(EPOCH_HEADER, str(epoch - 1).encode())])
    await _publish(broker.bootstrap, topic, [encode(replayed)],
                   headers=[(EPOCH_HEADER, str(epoch).encode())])
    await _publish(broker.bootstrap, topic, [encode(unstamped)])

    async def all_consumed() -> bool:
        return await _committed(broker.bootstrap, f"g-{unique}", topic) == 3

    await _run_loop(broker, engine, producer, topic, f"g-{unique}", _Flaky(), all_consumed)
    assert await _committed(broker.bootstrap, f"g-{unique}", topic) == 3
    assert await _effect_count(engine, [f"X{unique}"]) == 0
    assert await _effect_count(engine, [f"Y{unique}", f"Z{unique}"]) == 2
    assert await read_topic(broker.bootstrap, topic + ".dlq", 1, within=1) == []


async def test_a_batch_is_applied_topic_by_topic_in_the_subscriptions_order(
        broker: Broker, engine: AsyncEngine, producer: Producer, unique: str) -> None:
    """A fetch returns partitions in no particular order: a case's later event (another
    topic) may come first. The loop applies the topics in the order they were subscribed."""
    first, second = f"test.first.{unique}", f"test.second.{unique}"
    applied: list[str] = []

    async def record(session: AsyncSession, delivery: Delivery) -> None:
        applied.append(delivery.topic)

    async def record_run(session: AsyncSession, run: list[Delivery]) -> None:
        applied.extend(d.topic for d in run)

    loop = ConsumerLoop(bootstrap=broker.bootstrap, group=f"g-{unique}", subscriptions=[
        Subscription(first, CaseReportedEvent, handle_batch=record_run),
        Subscription(second, CaseReportedEvent, record)],
        sessions=session_factory(engine), processed=tables.processed, producer=producer)
    as_fetched = [(second, reported(f"S{unique}")), (first, reported(f"F{unique}")),
                  (second, reported(f"T{unique}")), (first, reported(f"G{unique}"))]
    await loop._apply([Delivery(topic, 0, n, None, event, encode(event))
                       for n, (topic, event) in enumerate(as_fetched)])
    assert applied == [first, first, second, second]


async def test_messages_not_relevant_are_committed_without_effect_or_processed_key(
        broker: Broker, engine: AsyncEngine, producer: Producer, unique: str) -> None:
    topic = await _topic(broker, unique)
    wanted, ignored = reported(f"W{unique}"), reported(f"I{unique}")
    await _publish(broker.bootstrap, topic, [encode(ignored), encode(wanted), encode(ignored)])
    handler = _Flaky()

    async def all_committed() -> bool:
        return await _committed(broker.bootstrap, f"g-{unique}", topic) == 3

    await _run_loop(broker, engine, producer, topic, f"g-{unique}", handler, all_committed,
                    # `relevant` sees the message's JSON, before it is validated.
                    relevant=lambda payload: payload["data"]["case_id"].startswith("W"))
    assert await _committed(broker.bootstrap, f"g-{unique}", topic) == 3
    assert handler.calls == 1
    assert await _effect_count(engine, [f"W{unique}", f"I{unique}"]) == 1
    async with engine.connect() as conn:
        remembered = set((await conn.execute(select(tables.processed.c.event_id).where(
            tables.processed.c.consumer == f"g-{unique}"))).scalars())
    assert remembered == {wanted.id}


async def test_a_header_tells_relevance_before_parsing_and_its_absence_changes_nothing(
        broker: Broker, engine: AsyncEngine, producer: Producer, unique: str) -> None:
    """A record whose header names a value not wanted is skipped unparsed (even one that is
    not JSON); one with a wanted value, or without the header (older records, producers that
    do not set it), is parsed, tested by `relevant`, validated and dead-lettered as before."""
    topic = await _topic(broker, unique)
    kept_by_header, kept_by_test = reported(f"W{unique}"), reported(f"X{unique}")
    dropped_by_test = reported(f"I{unique}")
    wanted_header = [("fq-kind", b"wanted")]
    await _publish(broker.bootstrap, topic, [b"{not json", encode(reported(f"W{unique}"))],
                   headers=[("fq-kind", b"other")])
    await _publish(broker.bootstrap, topic, [encode(kept_by_header)], headers=wanted_header)
    await _publish(broker.bootstrap, topic, [encode(kept_by_test), encode(dropped_by_test),
                                             b"{not json either"])
    handler = _Flaky()

    async def all_committed() -> bool:
        return await _committed(broker.bootstrap, f"g-{unique}", topic) == 6

    await _run_loop(broker, engine, producer, topic, f"g-{unique}", handler, all_committed,
                    relevant=lambda payload: not payload["data"]["case_id"].startswith("I"),
                    relevant_header=("fq-kind", frozenset({b"wanted"})))
    assert await _committed(broker.bootstrap, f"g-{unique}", topic) == 6
    assert handler.calls == 2
    async with engine.connect() as conn:
        remembered = set((await conn.execute(select(tables.processed.c.event_id).where(
            tables.processed.c.consumer == f"g-{unique}"))).scalars())
    assert remembered == {kept_by_header.id, kept_by_test.id}
    dead = await read_topic(broker.bootstrap, topic + ".dlq", 1, within=5)
    assert [v for _, v, _ in dead] == [b"{not json either"]
    assert dead[0][2][DLQ_REASON_HEADER].decode().startswith("not JSON: ")


async def test_an_outbox_row_s_headers_are_published_after_the_relay_s_own(
        broker: Broker, engine: AsyncEngine, producer: Producer, unique: str) -> None:
    topic = f"test.outbox.headers.{unique}"
    sessions = session_factory(engine)
    plain, marked = reported(f"P{unique}"), reported(f"M{unique}")
    async with sessions() as session, session.begin():
        await add_to_outbox(session, tables.outbox, [
            outbox_row(topic, plain), outbox_row(topic, marked, headers={"fq-kind": "none"})])
    relay = OutboxRelay(service=f"test{unique}", engine=engine, sessions=sessions,
                        outbox=tables.outbox, producer=producer, published=tables.published,
                        retention_seconds=3600)
    assert await relay.publish_once() >= 2
    got = await read_topic(broker.bootstrap, topic, 2)
    by_id = {orjson.loads(v)["id"]: headers for _, v, headers in got}
    assert set(by_id[plain.id]) == {"content-type", EPOCH_HEADER}
    assert by_id[marked.id]["fq-kind"] == b"none"
    assert by_id[marked.id]["content-type"] == b"application/cloudevents+json"
    # Kept rows published again to a broker that lost them carry their headers too.
    async with sessions() as session, session.begin():
        await session.execute(tables.published.update().where(
            tables.published.c.topic == topic).values(broker_epoch=-1))
    relay._looked = False
    while await relay.publish_once():
        pass
    again = [(orjson.loads(v)["id"], headers)
             for _, v, headers in await read_topic(broker.bootstrap, topic, 4)]
    assert sorted(i for i, _ in again) == sorted([plain.id, marked.id] * 2)
    assert all(h.get("fq-kind") == (b"none" if i == marked.id else None) for i, h in again)
