"""Intake over real HTTP on loopback, with the real broker and database: every channel's
native payload becomes one canonical case; bad input, duplicates and privacy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI

from contracts.topics import CASE_REPORTED
from services.intake.main import create
from tests.infra import AUTH, Broker, serve, service_settings

pytestmark = pytest.mark.integration

# GB 11643's own example, and numbers whose check character was computed by hand.
ID_STANDARD = "11010519491231002X"
ID_OTHER = "440524188001010014"
ID_THIRD = "330699198503120037"


@pytest.fixture(scope="module")
async def intake_app(broker: Broker, database_url: str, run_dir: Path
                     ) -> AsyncIterator[tuple[FastAPI, str]]:
    app = create(service_settings("intake", broker.bootstrap, database_url, run_dir))
    async with serve(app) as url:
        yield app, url


@pytest.fixture(scope="module")
def intake(intake_app: tuple[FastAPI, str]) -> str:
    return intake_app[1]


# --- native payloads, one factory per channel -----------------------------------------------

def order(no: str, **extra: object) -> dict[str, object]:
    return {"order_no": no, "content": "楼上漏水，多次沟通无果。",
            "received_at": "2026-11-20T08:00:00+08:00", "caller_name": "张三",
            "caller_phone": "13912345678", **extra}


def grid_report(no: str, **extra: object) -> dict[str, object]:
    return {"report_id": no, "grid_code": "330699001001001",
            "description": "邻居装修噪音扰民，双方争吵。", "reporter_id": "WG0012",
            "reporter_name": "网格员李四", "event_type": "邻里纠纷",
            "occurred_at": "2026-11-19T21:30:00+08:00", "address": "城关街道江滨社区3幢",
            "location": {"lat": 29.71, "lon": 120.24}, "people_involved": 2,
            "parties": [{"name": "王五", "phone": "13800138000", "id_number": ID_STANDARD}],
            "photos": ["https://img.example.cn/grid/1.jpg"], **extra}


def police_referral(no: str, **extra: object) -> dict[str, object]:
    return {"incident_no": no, "summary": "两车刮擦引发争执，双方互不相让。",
            "station_code": "330699510100", "station_name": "枫溪县公安局城关派出所",
            "officer_name": "赵警官", "dispute_type": "交通纠纷",
            "occurred_at": "2026-11-20T07:45:00+08:00", "address": "城关街道人民路口",
            "region_code": "330699001",
            "parties": [{"name": "钱一", "role": "当事人", "phone": "+86 137 0013 7000"}],
            "injuries": True, **extra}


def court_referral(no: str, **extra: object) -> dict[str, object]:
    return {"case_no": f"(2026)浙0699民诉前调{no}号", "summary": "借款十八万元到期未还。",
            "court_code": "330699C000", "court_name": "枫溪县人民法院", "cause": "民间借贷纠纷",
            "claim_amount": 180000,
            "plaintiffs": [{"name": "孙二", "phone": "0571-87654321", "id_number": ID_OTHER}],
            "defendants": [{"name": "周三", "role": "被告", "address": "溪南街道新华社区"}],
            "referred_at": "2026-11-20T09:00:00+08:00", **extra}


def petition_referral(no: str, **extra: object) -> dict[str, object]:
    return {"petition_no": no, "content": "村民联名反映征地补偿款迟迟未发放。",
            "petitioners": [{"name": "吴四", "phone": "13600136000"}, {"name": "郑五"}],
            "people_count": 12, "region_code": "330699101201", **extra}


def walk_in_visit(no: str | None = None, **extra: object) -> dict[str, object]:
    visit: dict[str, object] = {
        "content": "工地拖欠三个月工资，老板失联。", "category": "劳资纠纷",
        "visitor": {"name": "冯六", "phone": "13500135000", "id_number": ID_THIRD},
        "region_code": "330699002", **extra}
    if no is not None:
        visit["visit_id"] = no
    return visit


SAMPLES: dict[str, Callable[..., dict[str, object]]] = {
    "hotline_12345": order, "grid": grid_report, "police": police_referral,
    "court": court_referral, "petition": petition_referral, "walk_in": walk_in_visit}
CLEAR_NUMBERS = [b"13912345678", b"13800138000", b"13700137000", b"87654321", b"13600136000",
                 b"13500135000", ID_STANDARD.encode(), ID_OTHER.encode(), ID_THIRD.encode()]


async def read_until(bootstrap: str, topic: str,
                     done: Callable[[list[tuple[bytes | None, bytes, dict[str, bytes]]]], bool],
                     within: float = 20.0) -> list[tuple[bytes | None, bytes, dict[str, bytes]]]:
    """Every record of `topic` from the start, until `done(records)` or `within` seconds.
    No consumer group, so no join to wait for."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    out: list[tuple[bytes | None, bytes, dict[str, bytes]]] = []
    try:
        await consumer.topics()
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or {0})]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = asyncio.get_running_loop().time() + within
        while not done(out) and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                out += [(r.key, r.value or b"", dict(r.headers)) for r in records]
    finally:
        await consumer.stop()
    return out


async def reported_events(bootstrap: str, case_ids: list[str], within: float = 20.0
                          ) -> dict[str, list[dict[str, Any]]]:
    """The CaseReported events of these cases, by case id (a list, to see doubles)."""
    wanted = set(case_ids)

    def subjects(records: list[tuple[bytes | None, bytes, dict[str, bytes]]]) -> set[str]:
        return {k.decode() for k, _, _ in records if k} & wanted

    records = await read_until(bootstrap, CASE_REPORTED,
                               lambda rs: subjects(rs) == wanted, within)
    found: dict[str, list[dict[str, Any]]] = {}
    for key, value, _ in records:
        if key and key.decode() in wanted:
            found.setdefault(key.decode(), []).append(orjson.loads(value))
    return found


# --- every channel ---------------------------------------------------------------------------

async def test_every_channel_becomes_one_canonical_case_with_numbers_masked(
        intake: str, broker: Broker, unique: str) -> None:
    case_ids: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        for channel, sample in SAMPLES.items():
            posted = await client.post(f"/v1/intake/{channel}", json=sample(f"E{unique}"))
            assert posted.status_code == 202, (channel, posted.text)
            assert posted.json()["status"] == "accepted"
            case_ids[channel] = posted.json()["case_id"]
    events = await reported_events(broker.bootstrap, list(case_ids.values()))
    assert {c: len(events.get(i, [])) for c, i in case_ids.items()} == dict.fromkeys(SAMPLES, 1)
    case = {channel: events[case_id][0]["data"] for channel, case_id in case_ids.items()}
    for channel, data in case.items():
        assert data["channel"] == channel
        assert data["case_id"] == case_ids[channel]
    assert case["hotline_12345"]["reporter"]["phone_masked"] == "139****5678"

    grid = case["grid"]
    assert (grid["text"], grid["channel_category"], grid["grid_code"]) == (
        "邻居装修噪音扰民，双方争吵。", "邻里纠纷", "330699001001001")
    assert grid["people_count"] == 2 and grid["location"] == {"lat": 29.71, "lon": 120.24}
    assert grid["reporter"]["name"] == "网格员李四"
    party = grid["parties"][0]
    assert (party["phone_masked"], party["id_number_masked"], party["role"]) == (
        "138****8000", "110105********002X", "other")
    assert len(party["phone_hash"]) == 64 and len(party["id_number_hash"]) == 64

    police = case["police"]
    assert (police["channel_category"], police["station_code"], police["region_code"],
            police["injuries"]) == ("交通纠纷", "330699510100", "330699001", True)
    assert police["parties"][0]["phone_masked"] == "137****7000"

    court = case["court"]
    assert (court["channel_category"], court["court_code"], court["amount"]) == (
        "民间借贷纠纷", "330699C000", 180000)
    referred = datetime.fromisoformat("2026-11-20T09:00:00+08:00")
    assert datetime.fromisoformat(court["received_at"]) == referred
    assert datetime.fromisoformat(court["deadline"]) == referred + timedelta(days=30)
    assert [p["role"] for p in court["parties"]] == ["plaintiff", "defendant"]
    assert court["external_id"] == f"(2026)浙0699民诉前调E{unique}号"

    petition = case["petition"]
    assert (petition["people_count"], petition["region_code"]) == (12, "330699101201")
    assert [p["role"] for p in petition["parties"]] == ["petitioner", "petitioner"]

    walk_in = case["walk_in"]
    assert walk_in["external_id"] == f"E{unique}"
    assert walk_in["channel_category"] == "劳资纠纷"
    assert walk_in["reporter"]["id_number_masked"] == "330699********0037"

    everything = orjson.dumps([events[i] for i in case_ids.values()])
    assert not [n for n in CLEAR_NUMBERS if n in everything]


async def test_numbers_typed_into_the_text_are_masked_in_the_event(
        intake: str, broker: Broker, unique: str) -> None:
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        posted = await client.post("/v1/intake/hotline_12345", json=order(
            f"T{unique}", content=f"请回电13912345678，身份证{ID_STANDARD}。"))
    case_id = posted.json()["case_id"]
    event = (await reported_events(broker.bootstrap, [case_id]))[case_id][0]
    assert event["data"]["text"] == "请回电139****5678，身份证110105********002X。"


@pytest.mark.parametrize("channel,changes,fields", [
    ("hotline_12345", {"deadline": "2026-11-19T08:00:00+08:00"}, {"deadline"}),
    ("grid", {"grid_code": "330699001001"}, {"grid_code"}),
    ("grid", {"report_id": None, "description": None}, {"report_id", "description"}),
    ("grid", {"people_involved": -1, "location": {"lat": 91, "lon": 0}},
     {"people_involved", "location.lat"}),
    ("grid", {"parties": [{"name": "王五", "id_number": "110105194912310021"}]},
     {"parties.0.id_number"}),
    ("grid", {"photos": ["not a url"]}, {"photos.0"}),
    ("police", {"region_code": "3306990", "occurred_at": "2026-11-20T07:45:00"},
     {"region_code", "occurred_at"}),
    ("police", {"injuries": "maybe"}, {"injuries"}),
    ("court", {"claim_amount": -5}, {"claim_amount"}),
    ("court", {"mediation_deadline": "2026-11-01T00:00:00+08:00"}, {"mediation_deadline"}),
    ("court", {"plaintiffs": [{"name": "孙二", "phone": "12345"}],
               "defendants": [{"role": "bystander"}]},
     {"plaintiffs.0.phone", "defendants.0.role"}),
    ("petition", {"content": "长" * 5001, "people_count": "many"}, {"content", "people_count"}),
    ("walk_in", {"content": None}, {"content"}),
    ("walk_in", {"visitor": {"name": "冯六", "id_number": "330699850312003"}},
     {"visitor.id_number"}),
    ("walk_in", {"grid_code": "33069900100100X"}, {"grid_code"}),
    ("police", {"summary": "打架\u0000", "occurred_at": "9999-12-31T23:59:59+08:00"},
     {"summary", "occurred_at"}),
])
async def test_each_channel_names_every_invalid_field(
        intake: str, channel: str, changes: dict[str, object], fields: set[str]) -> None:
    payload = {k: v for k, v in {**SAMPLES[channel]("V1"), **changes}.items() if v is not None}
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        r = await client.post(f"/v1/intake/{channel}", json=payload)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "validation_failed"
    assert {f["field"] for f in body["fields"]} == fields
    assert all(f["reason"] for f in body["fields"])
    assert "110105194912310021" not in r.text  # reasons never repeat a number


@pytest.mark.parametrize("channel", ["hotline_12345", "grid", "police", "court", "petition",
                                     "walk_in"])
async def test_the_same_report_again_is_the_same_case_and_changed_content_is_409(
        intake: str, channel: str, unique: str) -> None:
    first_payload = SAMPLES[channel](f"D{unique}")
    text_field = {"hotline_12345": "content", "grid": "description", "police": "summary",
                  "court": "summary", "petition": "content", "walk_in": "content"}[channel]
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        first = await client.post(f"/v1/intake/{channel}", json=first_payload)
        again = await client.post(f"/v1/intake/{channel}", json=first_payload)
        changed = await client.post(f"/v1/intake/{channel}",
                                    json={**first_payload, text_field: "内容改了"})
    assert (first.status_code, again.status_code, changed.status_code) == (202, 200, 409)
    assert again.json() == {"case_id": first.json()["case_id"], "status": "duplicate"}
    assert changed.json()["case_id"] == first.json()["case_id"]
    assert changed.json()["error"] == "conflict"
    # Issue 23: the 409 names what changed and says what to do, in English and Chinese.
    assert [f["field"] for f in changed.json()["fields"]] == [text_field]
    assert "内容不同" in changed.json()["fields"][0]["reason_zh"]
    assert "Resend it unchanged" in changed.json()["message"]
    assert "原样重发" in changed.json()["message"]
    assert "内容改了" not in changed.text  # names, never values


async def test_concurrent_posts_of_one_order_make_exactly_one_case(intake: str,
                                                                    unique: str) -> None:
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        answers = await asyncio.gather(*[
            client.post("/v1/intake/hotline_12345", json=order(f"C{unique}"))
            for _ in range(20)])
    assert sorted({a.status_code for a in answers}) in ([200, 202], [202])
    assert [a.status_code for a in answers].count(202) == 1
    assert len({a.json()["case_id"] for a in answers}) == 1


async def test_walk_ins_without_an_id_are_new_cases_and_with_one_are_not_doubled(
        intake: str, unique: str) -> None:
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        anonymous = [await client.post("/v1/intake/walk_in", json=walk_in_visit())
                     for _ in range(2)]
        by_body = [await client.post("/v1/intake/walk_in", json=walk_in_visit(f"W{unique}"))
                   for _ in range(2)]
        by_header = [await client.post("/v1/intake/walk_in", json=walk_in_visit(),
                                       headers={"Idempotency-Key": f"K{unique}"})
                     for _ in range(2)]
        same_as_body = await client.post("/v1/intake/walk_in", json=walk_in_visit(),
                                         headers={"Idempotency-Key": f"W{unique}"})
        mismatch = await client.post("/v1/intake/walk_in", json=walk_in_visit(f"W{unique}"),
                                     headers={"Idempotency-Key": f"X{unique}"})
        bad_key = await client.post("/v1/intake/walk_in", json=walk_in_visit(),
                                    headers={"Idempotency-Key": "has spaces in it"})
    assert [a.status_code for a in anonymous] == [202, 202]
    assert anonymous[0].json()["case_id"] != anonymous[1].json()["case_id"]
    assert [a.status_code for a in by_body] == [202, 200]
    assert [a.status_code for a in by_header] == [202, 200]
    assert by_header[0].json()["case_id"] == by_header[1].json()["case_id"]
    assert same_as_body.status_code == 200
    assert same_as_body.json()["case_id"] == by_body[0].json()["case_id"]
    assert mismatch.status_code == 422 and mismatch.json()["fields"][0]["field"] == "visit_id"
    assert bad_key.status_code == 422
    assert bad_key.json()["fields"][0]["field"] == "Idempotency-Key"


async def test_a_report_can_be_looked_up_by_its_external_id(intake: str, unique: str) -> None:
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        posted = await client.post("/v1/intake/court", json=court_referral(f"L{unique}"))
        found = await client.get(f"/v1/intake/court/reports/(2026)浙0699民诉前调L{unique}号")
        other_channel = await client.get(
            f"/v1/intake/police/reports/(2026)浙0699民诉前调L{unique}号")
    assert found.status_code == 200
    assert found.json()["case_id"] == posted.json()["case_id"]
    assert datetime.fromisoformat(found.json()["received_at"]) == datetime.fromisoformat(
        "2026-11-20T09:00:00+08:00")
    assert other_channel.status_code == 404


async def test_an_id_no_report_can_have_is_simply_not_found(intake: str) -> None:
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        for odd in ("a%00b", "x" * 200, "%E2%80%8B"):
            assert (await client.get(f"/v1/intake/grid/reports/{odd}")).status_code == 404


async def test_a_key_limited_to_one_channel_cannot_submit_to_another(
        intake_app: tuple[FastAPI, str], unique: str) -> None:
    app, url = intake_app
    _, token = await app.state.keys.create(f"grid-{unique}", ["intake:write"],
                                           channels=["grid"])
    async with httpx.AsyncClient(base_url=url,
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        allowed = await client.post("/v1/intake/grid", json=grid_report(f"G{unique}"))
        refused = await client.post("/v1/intake/police", json=police_referral(f"G{unique}"))
        refused_batch = await client.post("/v1/intake/police/batch",
                                          json={"items": [police_referral(f"G{unique}")]})
    assert allowed.status_code == 202
    assert (refused.status_code, refused_batch.status_code) == (403, 403)


@pytest.mark.parametrize("body,fields", [
    ({"content": "x", "received_at": "2026-11-20T08:00:00+08:00"}, {"order_no"}),
    ({"order_no": "X1", "content": "x", "received_at": "tomorrow"}, {"received_at"}),
    ({"order_no": "X1", "content": "x", "received_at": "2026-11-20T08:00:00+08:00",
      "caller_phone": "12"}, {"caller_phone"}),
    ({"order_no": "X1", "content": "", "received_at": "2026-11-20T08:00:00"},
     {"content", "received_at"}),
    ([1, 2, 3], {"<body>"}),
    ("just a string", {"<body>"}),
])
async def test_bad_input_is_422_naming_every_field(intake: str, body: object,
                                                   fields: set[str]) -> None:
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        r = await client.post("/v1/intake/hotline_12345", json=body)
    assert r.status_code == 422
    assert {f["field"] for f in r.json()["fields"]} == fields


async def test_empty_optional_fields_count_as_absent(intake: str, unique: str) -> None:
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        r = await client.post("/v1/intake/hotline_12345", json=order(
            f"B{unique}", caller_phone="", caller_name=" ", region_code="", deadline=""))
    assert r.status_code == 202, r.text


async def test_a_body_that_is_not_json_is_4xx_not_500(intake: str) -> None:
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        broken = await client.post("/v1/intake/hotline_12345", content=b"{{",
                                   headers={"content-type": "application/json"})
        not_utf8 = await client.post("/v1/intake/hotline_12345", content=b"\xff{{",
                                     headers={"content-type": "application/json"})
        batch_broken = await client.post("/v1/intake/grid/batch", content=b"[",
                                         headers={"content-type": "application/json"})
        form = await client.post("/v1/intake/police", content=b"a=b",
                                 headers={"content-type": "application/x-www-form-urlencoded"})
    assert broken.status_code == 422
    assert broken.json()["fields"][0]["field"] == "<body>"
    assert 400 <= not_utf8.status_code < 500
    assert not_utf8.json()["error"] in ("bad_request", "validation_failed")
    assert batch_broken.status_code == 422
    assert 400 <= form.status_code < 500


async def test_unknown_channel_is_404_and_missing_or_wrong_key_is_401(intake: str) -> None:
    async with httpx.AsyncClient(base_url=intake) as client:
        unknown = await client.post("/v1/intake/fax", json={}, headers=AUTH)
        open311 = await client.post("/v1/intake/open311", json={}, headers=AUTH)
        unknown_batch = await client.post("/v1/intake/fax/batch", json={"items": [{}]},
                                          headers=AUTH)
        missing = await client.post("/v1/intake/hotline_12345", json=order("K1"))
        wrong = await client.post("/v1/intake/hotline_12345", json=order("K1"),
                                  headers={"Authorization": "Bearer nope"})
    assert (unknown.status_code, open311.status_code, unknown_batch.status_code) == (
        404, 404, 404)
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.headers["www-authenticate"] == "Bearer"


async def test_health_readiness_and_metrics(intake: str) -> None:
    async with httpx.AsyncClient(base_url=intake) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        metrics = await client.get("/metrics")
        openapi = await client.get("/openapi.json")
    assert openapi.status_code == 200
    assert {"/v1/intake/court/batch", "/open311/v2/requests.{fmt}"} <= set(openapi.json()["paths"])
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": True,
                                                                   "broker": True}
    assert 'fq_cases_received_total{channel="grid"}' in metrics.text
    assert 'fq_http_requests_total{method="POST",route="/v1/intake/{channel}"' not in metrics.text


async def test_the_contact_phone_is_readable_only_with_the_personal_data_scope(
        intake: str, database_url: str, run_dir: Path, unique: str) -> None:
    from kit.auth import KeyStore
    from kit.db import create_engine

    url = service_settings("intake", "", database_url, run_dir).effective_auth_database_url()
    engine = create_engine(url)
    try:
        _, directory_key = await KeyStore(engine).create("notify", ["personal_data:read"])
        _, writer_key = await KeyStore(engine).create("hotline", ["intake:write"])
    finally:
        await engine.dispose()
    async with httpx.AsyncClient(base_url=intake) as client:
        posted = await client.post("/v1/intake/hotline_12345", json=order(f"CT{unique}"),
                                   headers=AUTH)
        case_id = posted.json()["case_id"]
        path = f"/v1/intake/cases/{case_id}/contact"
        allowed = await client.get(path, headers={"Authorization": f"Bearer {directory_key}"})
        refused = await client.get(path, headers={"Authorization": f"Bearer {writer_key}"})
        unknown = await client.get("/v1/intake/cases/FQ-NONE/contact", headers=AUTH)
    assert allowed.status_code == 200
    assert allowed.json() == {"case_id": case_id, "phone": "13912345678"}
    assert allowed.headers["cache-control"] == "no-store"
    assert refused.status_code == 403
    assert unknown.status_code == 404
