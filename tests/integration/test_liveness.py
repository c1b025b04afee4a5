"""Liveness, not only life: lag read from the broker for every group (kit.lag), and
/healthz failing when a consumer loop stops making progress (kit.liveness)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import BaseModel

from contracts.topics import CONSUMER_GROUPS
from kit.app import create_app
from kit.bus import create_topics
from kit.consumer import Delivery, Subscription
from kit.lag import GroupLagExporter
from kit.metrics import CONSUMER_GROUP_LAG
from kit.runtime import Runtime
from services.intake.main import create as create_intake
from services.mediation.main import create as create_mediation
from services.notify.main import create as create_notify
from services.router.main import create as create_router
from services.router.store import kit_tables, metadata
from tests.infra import Broker, eventually, free_port, serve, service_settings

pytestmark = pytest.mark.integration


async def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(topic, b'{"n": %d}' % i, key=str(i).encode())
    finally:
        await producer.stop()


async def test_lag_is_read_from_the_broker_for_groups_that_commit_and_groups_that_never_did(
        broker: Broker, unique: str) -> None:
    topic = f"lag-{unique}"
    await create_topics(broker.bootstrap, [topic], 3)
    await _produce(broker.bootstrap, topic, 30)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap,
                                group_id=f"lag-busy-{unique}", enable_auto_commit=False,
                                auto_offset_reset="earliest", max_poll_records=10)
    await consumer.start()
    try:
        taken = 0
        while taken < 10:
            batch = await consumer.getmany(timeout_ms=2000, max_records=10 - taken)
            taken += sum(len(records) for records in batch.values())
            await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
    finally:
        await consumer.stop()

    groups = {f"lag-busy-{unique}": (topic,), f"lag-dead-{unique}": (topic,)}
    exporter = GroupLagExporter(broker.bootstrap, every=0.2, groups=groups)
    assert await exporter.measure() == {(f"lag-busy-{unique}", topic): (20, 10),
                                        (f"lag-dead-{unique}", topic): (30, 0)}
    # Nothing consumes: new messages are lag, whoever (if anyone) was meant to take them.
    await _produce(broker.bootstrap, topic, 5)
    running = asyncio.create_task(exporter.run())
    try:
        await eventually(
            lambda: asyncio.sleep(0, CONSUMER_GROUP_LAG.labels(
                group=f"lag-dead-{unique}", topic=topic)._value.get()),
            lambda lag: lag == 35, within=10)
        assert CONSUMER_GROUP_LAG.labels(
            group=f"lag-busy-{unique}", topic=topic)._value.get() == 25
    finally:
        exporter.stop()
        await asyncio.wait_for(running, 10)


def test_the_services_consume_exactly_the_declared_groups(broker: Broker, database_url: str,
                                                           run_dir: Path) -> None:
    """The lag exporter knows the groups from contracts.topics.CONSUMER_GROUPS: a group or
    topic added to a service and not there would have no lag figure."""
    declared: dict[str, set[str]] = {}
    for name, create in (("intake", create_intake), ("router", create_router),
                         ("mediation", create_mediation), ("notify", create_notify)):
        app = create(service_settings(name, broker.bootstrap, database_url, run_dir))
        for loop in app.state.runtime.loops:
            declared[loop.group] = set(loop.subscriptions)
    assert declared == {group: set(topics) for group, topics in CONSUMER_GROUPS.items()}


class Ping(BaseModel):
    n: int


async def test_healthz_fails_while_a_consumer_is_stuck_and_names_it(
        broker: Broker, database_url: str, run_dir: Path, unique: str) -> None:
    topic = f"stuck-{unique}"
    await create_topics(broker.bootstrap, [topic], 1)
    release = asyncio.Event()

    async def hang(session: object, delivery: Delivery) -> None:
        await release.wait()  # a lock never released, a call that never returns

    settings = service_settings("router", broker.bootstrap, database_url, run_dir,
                                liveness_bound_seconds=4.0)
    runtime = Runtime(settings, metadata, kit_tables)
    runtime.consume(f"stuck-{unique}", [Subscription(topic, Ping, hang)])
    app = create_app(runtime, title="stuck", description="", routers=[])
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        # Idle is progress: once consuming, with nothing to consume, it stays healthy past
        # the bound.
        activity = f"consumer-stuck-{unique}"
        await eventually(lambda: client.get("/healthz"),
                         lambda r: r.json()["seconds_since_progress"][activity] < 1, within=30)
        await asyncio.sleep(5)
        healthy = await client.get("/healthz")
        assert healthy.status_code == 200, healthy.text
        assert healthy.json()["seconds_since_progress"][activity] < 2
        await _produce(broker.bootstrap, topic, 1)
        stuck = await eventually(lambda: client.get("/healthz"),
                                 lambda r: r.status_code == 503, within=20)
        assert stuck.json()["stuck"] == [activity]
        release.set()
        await eventually(lambda: client.get("/healthz"),
                         lambda r: r.status_code == 200, within=20)


async def test_a_broker_outage_is_not_a_hang(database_url: str, run_dir: Path,
                                             unique: str) -> None:
    """No broker at all: the consumers and the relay cannot progress, but restarting would
    not help (intake keeps taking reports into its outbox), so /healthz stays 200 while
    /readyz says the broker is missing."""
    settings = service_settings("router", f"127.0.0.1:{free_port()}", database_url, run_dir,
                                liveness_bound_seconds=8.0)
    runtime = Runtime(settings, metadata, kit_tables)
    runtime.consume(f"outage-{unique}", [Subscription(f"outage-{unique}", Ping,
                                                      lambda s, d: asyncio.sleep(0))])
    app = create_app(runtime, title="outage", description="", routers=[])
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        await asyncio.sleep(12)
        health = await client.get("/healthz")
        assert health.status_code == 200, health.text
        assert health.json()["seconds_since_progress"][f"consumer-outage-{unique}"] < 8
        assert (await client.get("/readyz")).status_code == 503
