"""Intake over real HTTP on loopback, with the real broker and database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from contracts.topics import CASE_REPORTED, intake_topic
from kit.bus import DLQ_REASON_HEADER
from services.intake.main import create
from tests.infra import AUTH, Broker, serve, service_settings
from tests.integration.test_bus import read_topic

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def intake(broker: Broker, database_url: str, run_dir: Path) -> AsyncIterator[str]:
    app = create(service_settings("intake", broker.bootstrap, database_url, run_dir))
    async with serve(app) as url:
        yield url


def order(no: str, **extra: object) -> dict[str, object]:
    return {"order_no": no, "content": "楼上漏水，多次沟通无果。",
            "received_at": "2026-11-20T08:00:00+08:00", "caller_name": "张三",
            "caller_phone": "13912345678", **extra}


async def test_a_work_order_is_accepted_once_and_its_duplicate_returns_the_same_case(
        intake: str, unique: str) -> None:
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        first = await client.post("/v1/intake/hotline_12345", json=order(f"D{unique}"))
        second = await client.post("/v1/intake/hotline_12345", json=order(f"D{unique}"))
        changed = await client.post("/v1/intake/hotline_12345",
                                    json=order(f"D{unique}", content="内容改了"))
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["case_id"] == first.json()["case_id"]
    assert changed.status_code == 409
    assert changed.json()["case_id"] == first.json()["case_id"]


async def test_concurrent_posts_of_one_order_make_exactly_one_case(intake: str,
                                                                    unique: str) -> None:
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        answers = await asyncio.gather(*[
            client.post("/v1/intake/hotline_12345", json=order(f"C{unique}"))
            for _ in range(20)])
    assert sorted({a.status_code for a in answers}) in ([200, 202], [202])
    assert [a.status_code for a in answers].count(202) == 1
    assert len({a.json()["case_id"] for a in answers}) == 1


async def test_the_reported_event_carries_masked_phone_and_hash_never_the_number(
        intake: str, broker: Broker, unique: str) -> None:
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        posted = await client.post("/v1/intake/hotline_12345", json=order(f"P{unique}"))
    case_id = posted.json()["case_id"]
    events = [orjson.loads(v) for _, v, _ in await read_topic(broker.bootstrap, CASE_REPORTED,
                                                              10_000, within=5)]
    mine = [e for e in events if e["subject"] == case_id]
    assert len(mine) == 1
    reporter = mine[0]["data"]["reporter"]
    assert reporter["phone_masked"] == "139****5678"
    assert len(reporter["phone_hash"]) == 64
    assert b"13912345678" not in orjson.dumps(mine[0])


@pytest.mark.parametrize("body,fields", [
    ({"content": "x", "received_at": "2026-11-20T08:00:00+08:00"}, {"order_no"}),
    ({"order_no": "X1", "content": "x", "received_at": "tomorrow"}, {"received_at"}),
    ({"order_no": "X1", "content": "x", "received_at": "2026-11-20T08:00:00+08:00",
      "caller_phone": "12"}, {"caller_phone"}),
    ({"order_no": "X1", "content": "", "received_at": "2026-11-20T08:00:00"},
     {"content", "received_at"}),
    ([1, 2, 3], {"<body>"}),
])
async def test_bad_input_is_422_naming_every_field(intake: str, body: object,
                                                   fields: set[str]) -> None:
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        r = await client.post("/v1/intake/hotline_12345", json=body)
    assert r.status_code == 422
    assert {f["field"] for f in r.json()["fields"]} == fields


async def test_a_body_that_is_not_json_is_4xx_not_500(intake: str) -> None:
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        broken = await client.post("/v1/intake/hotline_12345", content=b"{{",
                                   headers={"content-type": "application/json"})
        not_utf8 = await client.post("/v1/intake/hotline_12345", content=b"\xff{{",
                                     headers={"content-type": "application/json"})
    assert broken.status_code == 422
    assert broken.json()["fields"][0]["field"] == "<body>"
    assert not_utf8.status_code == 400
    assert not_utf8.json()["error"] == "bad_request"


async def test_unknown_channel_is_404_and_missing_or_wrong_key_is_401(intake: str) -> None:
    async with httpx.AsyncClient(base_url=intake) as client:
        unknown = await client.post("/v1/intake/fax", json={}, headers=AUTH)
        missing = await client.post("/v1/intake/hotline_12345", json=order("K1"))
        wrong = await client.post("/v1/intake/hotline_12345", json=order("K1"),
                                  headers={"Authorization": "Bearer nope"})
    assert unknown.status_code == 404
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.headers["www-authenticate"] == "Bearer"


async def test_health_readiness_and_metrics(intake: str) -> None:
    async with httpx.AsyncClient(base_url=intake) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        metrics = await client.get("/metrics")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": True,
                                                                   "broker": True}
    assert "fq_cases_received_total" in metrics.text
    assert 'fq_http_requests_total{method="POST",route="/v1/intake/{channel}"' not in metrics.text


async def test_kafka_native_orders_are_accepted_and_invalid_ones_dead_lettered(
        intake: str, broker: Broker, unique: str) -> None:
    topic = intake_topic("hotline_12345")
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, orjson.dumps(order(f"K{unique}")))
        await producer.send_and_wait(topic, orjson.dumps({"order_no": f"BAD{unique}"}))
    finally:
        await producer.stop()
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        for _ in range(200):
            again = await client.post("/v1/intake/hotline_12345", json=order(f"K{unique}"))
            if again.status_code == 200:
                break
            await asyncio.sleep(0.1)
    assert again.status_code == 200, "the Kafka-native order became a case first"
    dead = await read_topic(broker.bootstrap, topic + ".dlq", 100, within=5)
    reasons = [h[DLQ_REASON_HEADER].decode() for _, v, h in dead
               if f"BAD{unique}".encode() in v]
    assert len(reasons) == 1
    assert "content" in reasons[0] and "received_at" in reasons[0]
