"""Kafka-native intake through the real broker: every channel's native payload published to
intake.<channel>.v1 becomes a case with the same validation and duplicate rules as REST;
what cannot be accepted goes to intake.<channel>.v1.dlq with the reason in a header."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from contracts.topics import intake_topic
from kit.bus import DLQ_REASON_HEADER
from tests.infra import AUTH, Broker
from tests.integration.test_intake import (
    SAMPLES,
    court_referral,
    intake,
    intake_app,
    order,
    read_until,
    reported_events,
)

pytestmark = pytest.mark.integration
# The module-scoped fixtures of test_intake, re-exported: this module gets its own server.
__all__ = ["intake", "intake_app"]

EXTERNAL_IDS = {"hotline_12345": "{no}", "grid": "{no}", "police": "{no}",
                "court": "(2026)浙0699民诉前调{no}号", "petition": "{no}", "walk_in": "{no}"}


async def publish(bootstrap: str, messages: list[tuple[str, bytes]], key: str | None = None
                  ) -> None:
    """Publish in order. Sources key a report's versions by its external id
    (docs/intake.md): without a key they may land on different partitions, in any order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, value in messages:
            await producer.send_and_wait(topic, value, key=key.encode() if key else None)
    finally:
        await producer.stop()


async def case_of(client: httpx.AsyncClient, channel: str, external_id: str,
                  within: float = 30.0) -> str | None:
    """The case a report became, once intake has consumed it (polled through the lookup)."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        found = await client.get(f"/v1/intake/{channel}/reports/{external_id}")
        if found.status_code == 200:
            return str(found.json()["case_id"])
        await asyncio.sleep(0.1)
    return None


async def dead_letters(bootstrap: str, channel: str, marker: str, count: int = 1
                       ) -> list[str]:
    """The reasons of the dead letters of `channel` whose value contains `marker`."""
    def mine(records: list[tuple[bytes | None, bytes, dict[str, bytes]]]) -> list[str]:
        return [h[DLQ_REASON_HEADER].decode() for _, v, h in records if marker.encode() in v]

    records = await read_until(bootstrap, intake_topic(channel) + ".dlq",
                               lambda rs: len(mine(rs)) >= count)
    return mine(records)


async def test_every_channel_publishes_native_payloads_that_become_cases(
        intake: str, broker: Broker, unique: str) -> None:
    messages = [(intake_topic(channel), orjson.dumps(sample(f"K{unique}")))
                for channel, sample in SAMPLES.items()]
    await publish(broker.bootstrap, messages)
    case_ids = {}
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        for channel in SAMPLES:
            external_id = EXTERNAL_IDS[channel].format(no=f"K{unique}")
            case_ids[channel] = await case_of(client, channel, external_id)
        assert all(case_ids.values()), case_ids
        # The REST door agrees: the same report again is the same case.
        again = await client.post("/v1/intake/police", json=SAMPLES["police"](f"K{unique}"))
    assert again.status_code == 200 and again.json()["case_id"] == case_ids["police"]
    events = await reported_events(broker.bootstrap, [str(c) for c in case_ids.values()])
    assert {channel: len(events.get(str(c), [])) for channel, c in case_ids.items()} == (
        dict.fromkeys(SAMPLES, 1))
    court = events[str(case_ids["court"])][0]["data"]
    assert court["amount"] == 180000 and court["parties"][0]["phone_masked"] == "0571-****4321"


@pytest.mark.parametrize("channel,bad,fields", [
    ("hotline_12345", {"content": "x"}, ["order_no", "received_at"]),
    ("grid", {"report_id": "R", "grid_code": "12345", "description": "x"}, ["grid_code"]),
    ("police", {"incident_no": "P", "summary": "x", "parties": [{"phone": "1"}]},
     ["parties.0.phone"]),
    ("court", {"case_no": "C", "summary": "x", "claim_amount": -1}, ["claim_amount"]),
    ("petition", {"petition_no": "F", "content": "x",
                  "petitioners": [{"id_number": "110105194912310021"}]},
     ["petitioners.0.id_number"]),
    ("walk_in", {"visit_id": "V"}, ["content"]),
])
async def test_an_invalid_message_is_dead_lettered_with_its_reason_and_the_next_one_passes(
        intake: str, broker: Broker, unique: str, channel: str, bad: dict[str, object],
        fields: list[str]) -> None:
    marker = f"M{unique}"
    good = SAMPLES[channel](f"G{unique}")
    await publish(broker.bootstrap, [
        (intake_topic(channel), orjson.dumps({**bad, "marker": marker})),
        (intake_topic(channel), orjson.dumps(good))])
    reasons = await dead_letters(broker.bootstrap, channel, marker)
    assert len(reasons) == 1
    assert reasons[0].startswith("schema violation")
    for field in fields:
        assert field in reasons[0]
    assert "110105194912310021" not in reasons[0]
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        external_id = EXTERNAL_IDS[channel].format(no=f"G{unique}")
        assert await case_of(client, channel, external_id) is not None


async def test_kafka_duplicates_are_one_case_and_conflicts_and_garbage_are_dead_lettered(
        intake: str, broker: Broker, unique: str) -> None:
    topic = intake_topic("hotline_12345")
    await publish(broker.bootstrap, [
        (topic, orjson.dumps(order(f"D{unique}"))),
        (topic, orjson.dumps(order(f"D{unique}"))),
        (topic, orjson.dumps(order(f"D{unique}", content=f"改过的内容{unique}"))),
        (topic, f"not json {unique}".encode()),
        (intake_topic("court"), orjson.dumps(court_referral(f"D{unique}")))], key=f"D{unique}")
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        case_id = await case_of(client, "hotline_12345", f"D{unique}")
        assert await case_of(client, "court", f"(2026)浙0699民诉前调D{unique}号")
    assert case_id is not None
    conflict = await dead_letters(broker.bootstrap, "hotline_12345", f"改过的内容{unique}")
    garbage = await dead_letters(broker.bootstrap, "hotline_12345", f"not json {unique}")
    assert len(conflict) == 1 and "different content" in conflict[0] and case_id in conflict[0]
    assert len(garbage) == 1 and garbage[0].startswith("not JSON")
    events = await reported_events(broker.bootstrap, [case_id])
    assert len(events[case_id]) == 1
