"""The outbox under a broker outage: with the broker down intake keeps answering 202, and once
it is back every case reaches case.reported.v1 exactly once, in the order it was received.

This test runs its own Tansu broker (the session's is shared by every test), stops it and
starts it again on the same port. Tansu keeps topics in memory, so the restarted broker is
empty: the topics are created again, and cases published before the outage are gone with
the old broker's memory; the cases counted are those received during and after it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import func, select

from contracts.topics import CASE_REPORTED
from kit.runtime import Runtime
from services.intake.main import create
from services.intake.store import kit_tables
from tests.infra import AUTH, Broker, serve, service_settings
from tests.integration.test_intake import order

pytestmark = [pytest.mark.integration, pytest.mark.both_backends]
OUTAGE_SECONDS = 17.0


async def start_broker(broker: Broker) -> None:
    broker.start()
    await broker.ready_with_topics()


async def test_with_the_broker_down_intake_answers_202_and_publishes_all_once_it_is_back(
        database_url: str, run_dir: Path, unique: str) -> None:
    log_dir = run_dir / f"outage-{unique}"
    log_dir.mkdir()
    broker = Broker(log_dir)
    await start_broker(broker)
    try:
        app = create(service_settings("intake", broker.bootstrap, database_url, run_dir))
        runtime: Runtime = app.state.runtime
        async with serve(app) as url, httpx.AsyncClient(base_url=url, headers=AUTH,
                                                        timeout=30) as client:
            before = [await client.post("/v1/intake/hotline_12345",
                                        json=order(f"B{unique}-{i}")) for i in range(5)]
            assert [r.status_code for r in before] == [202] * 5
            await wait_until_outbox_empty(runtime)

            broker.stop()
            # Keep posting for longer than the producer's 15 s request timeout (kit/bus.py):
            # then its sends fail for good, and only the outbox can bring the cases back.
            during: list[httpx.Response] = []
            down_since = asyncio.get_running_loop().time()
            while asyncio.get_running_loop().time() - down_since < OUTAGE_SECONDS:
                during.append(await client.post("/v1/intake/hotline_12345",
                                                json=order(f"D{unique}-{len(during)}")))
                await asyncio.sleep(0.2)
            batch = await client.post("/v1/intake/hotline_12345/batch", json={
                "items": [order(f"DB{unique}-{i}") for i in range(60)]})
            assert {r.status_code for r in during} == {202}
            assert batch.status_code == 200 and batch.json()["accepted"] == 60
            # Nothing was acknowledged, so every row is still waiting in the outbox.
            assert await outbox_backlog(runtime) == len(during) + 60

            await start_broker(broker)
            after = [await client.post("/v1/intake/hotline_12345",
                                       json=order(f"A{unique}-{i}")) for i in range(10)]
            assert [r.status_code for r in after] == [202] * 10

            received = ([r.json()["case_id"] for r in during]
                        + [x["case_id"] for x in batch.json()["results"]]
                        + [r.json()["case_id"] for r in after])
            await wait_until_outbox_empty(runtime, within=60)

        # The relay deletes a row only once the broker acknowledged it: all are there now.
        wanted = set(received)
        by_partition = await partition_order(broker.bootstrap, wanted)
        counts: dict[str, int] = {}
        for case_ids in by_partition.values():
            for case_id in case_ids:
                counts[case_id] = counts.get(case_id, 0) + 1
        missing = wanted - set(counts)
        doubled = {c: n for c, n in counts.items() if n > 1}
        assert not missing, f"{len(missing)} of {len(wanted)} cases never published"
        assert not doubled, f"published more than once: {doubled}"
        # In the order received: per partition (Kafka's unit of order), the cases appear
        # in the order intake accepted them.
        position = {case_id: i for i, case_id in enumerate(received)}
        for case_ids in by_partition.values():
            assert case_ids == sorted(case_ids, key=position.__getitem__)
    finally:
        broker.stop()


async def outbox_backlog(runtime: Runtime) -> int:
    async with runtime.sessions() as session:
        return int((await session.execute(
            select(func.count()).select_from(kit_tables.outbox))).scalar_one())


async def wait_until_outbox_empty(runtime: Runtime, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while await outbox_backlog(runtime):
        assert asyncio.get_running_loop().time() < deadline, "the outbox never drained"
        await asyncio.sleep(0.1)


async def partition_order(bootstrap: str, wanted: set[str]) -> dict[int, list[str]]:
    """The wanted case ids on case.reported.v1, partition by partition, in offset order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    out: dict[int, list[str]] = {}
    try:
        await consumer.topics()
        partitions = [TopicPartition(CASE_REPORTED, p)
                      for p in sorted(consumer.partitions_for_topic(CASE_REPORTED) or {0})]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                out.setdefault(tp.partition, []).extend(
                    r.key.decode() for r in records if r.key and r.key.decode() in wanted)
    finally:
        await consumer.stop()
    return out
