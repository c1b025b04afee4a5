"""The outbox relay on the embedded default's SQLite as on PostgreSQL: ids never reused once
the outbox has drained, and no row that cannot be published stops the others."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import MetaData, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from kit import migrate
from kit.bus import Producer
from kit.db import create_engine, session_factory
from kit.outbox import OutboxRelay, add_to_outbox, outbox_row
from kit.tables import KitTables
from tests.infra import Broker
from tests.integration.test_bus import read_topic, reported

pytestmark = [pytest.mark.integration, pytest.mark.both_backends]

metadata = MetaData()
tables = KitTables.define(metadata, "outboxtest")


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url)
    async with eng.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)
    yield eng
    await eng.dispose()


def relay_for(engine: AsyncEngine, producer: Producer, service: str) -> OutboxRelay:
    """A relay that keeps published rows (as `make run` does), in batches of 10."""
    return OutboxRelay(service=service, engine=engine, sessions=session_factory(engine),
                       outbox=tables.outbox, producer=producer, batch=10,
                       published=tables.published, retention_seconds=3600)


async def queue(engine: AsyncEngine, topic: str, count: int) -> list[str]:
    events = [reported(f"C{uuid.uuid4().hex[:8]}") for _ in range(count)]
    async with session_factory(engine)() as session, session.begin():
        await add_to_outbox(session, tables.outbox, [outbox_row(topic, e) for e in events])
    return [e.id for e in events]


async def drain(relay: OutboxRelay) -> int:
    total = 0
    while (published := await relay.publish_once()) > 0:
        total += published
    return total


async def waiting_rows(engine: AsyncEngine) -> int:
    async with session_factory(engine)() as session:
        return int((await session.execute(select(func.count()).select_from(tables.outbox)
                                           .where(tables.outbox.c.set_aside_reason.is_(None))
                                           )).scalar_one())


async def test_more_than_one_batch_after_the_outbox_drained_once(
        broker: Broker, engine: AsyncEngine, producer: Producer, unique: str) -> None:
    """The embedded default's bug: after the outbox emptied, SQLite handed out ids the kept
    published rows already had, the move failed, and the first batch went out again for
    ever while the rest never did."""
    topic = f"test.drained.{unique}"
    relay = relay_for(engine, producer, f"drained{unique}")
    first = await queue(engine, topic, 15)
    assert await drain(relay) == 15
    assert await waiting_rows(engine) == 0
    second = await queue(engine, topic, 25)  # more than two batches
    assert await drain(relay) == 25
    assert await waiting_rows(engine) == 0
    got = await read_topic(broker.bootstrap, topic, 40)
    ids = [orjson.loads(v)["id"] for _, v, _ in got]
    assert sorted(ids) == sorted(first + second)  # each once (each its own case and key)
    async with session_factory(engine)() as session:
        kept = (await session.execute(select(func.count(func.distinct(tables.published.c.id)))
                                      )).scalar_one()
    assert kept >= 40


async def test_a_row_the_broker_refuses_is_set_aside_and_the_rest_carry_on(
        broker: Broker, engine: AsyncEngine, producer: Producer, unique: str) -> None:
    topic = f"test.refused.{unique}"
    service = f"refused{unique}"
    relay = relay_for(engine, producer, service)
    before = await queue(engine, topic, 3)
    too_large = {"topic": topic, "key": "huge", "value": b"x" * (2 << 20), "headers": None,
                 "created_at": 0.0}
    async with session_factory(engine)() as session, session.begin():
        await add_to_outbox(session, tables.outbox, [too_large])
    after = await queue(engine, topic, 3)
    assert await drain(relay) == 6
    got = await read_topic(broker.bootstrap, topic, 6)
    assert sorted(orjson.loads(v)["id"] for _, v, _ in got) == sorted(before + after)
    async with session_factory(engine)() as session:
        reason = (await session.execute(select(tables.outbox.c.set_aside_reason)
                                        .where(tables.outbox.c.key == "huge"))).scalar_one()
    assert reason and "refused by the broker" in reason
    assert REGISTRY.get_sample_value("fq_outbox_set_aside_total", {"service": service}) == 1
    await relay._update_gauges()
    assert REGISTRY.get_sample_value("fq_outbox_failed_rows", {"service": service}) >= 1
    assert await drain(relay) == 0  # the set-aside row is not tried again in a loop


@pytest.mark.parametrize("service", ["intake", "router", "mediation", "notify"])
async def test_the_migration_starts_ids_above_every_published_row(
        service: str, tmp_path: Path) -> None:
    """A SQLite database made before the fix, whose outbox drained: its next ids would have
    collided with the kept rows."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    previous = {"intake": "827fbd2f5926", "router": "f997c58e5377",
                "mediation": "bef686f05236", "notify": "fd9b0027f4af"}[service]
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to, service, previous)
            for i in range(1, 11):
                await conn.execute(text(
                    f"INSERT INTO {service}_outbox_published (id, topic, key, value, headers, "
                    f"created_at, published_at, broker_epoch) "
                    f"VALUES ({i}, 't', 'k', x'00', NULL, 0, 0, 1)"))
        await migrate.upgrade(engine, service, MetaData())
        async with engine.begin() as conn:
            await conn.execute(text(
                f"INSERT INTO {service}_outbox (topic, key, value, created_at) "
                f"VALUES ('t', 'k', x'00', 0)"))
            new_id = (await conn.execute(text(f"SELECT max(id) FROM {service}_outbox"))
                      ).scalar_one()
            await conn.execute(text(f"DELETE FROM {service}_outbox"))
            await conn.execute(text(
                f"INSERT INTO {service}_outbox (topic, key, value, created_at) "
                f"VALUES ('t', 'k', x'00', 0)"))
            after_drain = (await conn.execute(text(f"SELECT max(id) FROM {service}_outbox"))
                           ).scalar_one()
        assert new_id == 11
        assert after_drain == 12
    finally:
        await engine.dispose()


def _upgrade_to(conn: object, service: str, revision: str) -> None:
    from alembic import command

    cfg = migrate._config(service, MetaData(), conn)  # type: ignore[arg-type]
    command.upgrade(cfg, revision)
