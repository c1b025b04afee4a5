"""The router as a service: preview over HTTP, the worked examples through the real broker,
hot reload of the rules file, and repeat detection across cases."""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from contracts.events import CaseReported, CaseReportedEvent, PartyRef
from contracts.topics import CASE_REPORTED, CASE_ROUTED, CORRECTION_KIND_HEADER
from kit.bus import Producer, Record, encode
from kit.privacy import keyed_hash, mask_phone
from services.router.domain.evaluation import LabelledReport, load_labelled
from services.router.main import create
from services.router.rulebook import DEFAULT_RULES
from tests.infra import AUTH, Broker, serve, service_settings

pytestmark = pytest.mark.integration
EXAMPLES = load_labelled(Path(__file__).parents[1] / "data" / "routing_examples.yaml")


@pytest.fixture(scope="module")
def rules_file(run_dir: Path) -> Path:
    path = run_dir / "router-rules.yaml"
    shutil.copy(DEFAULT_RULES, path)
    return path


@pytest.fixture(scope="module")
async def router(broker: Broker, database_url: str, run_dir: Path, rules_file: Path
                 ) -> AsyncIterator[str]:
    settings = service_settings("router", broker.bootstrap, database_url, run_dir,
                                routing_rules_path=rules_file)
    async with serve(create(settings)) as url:
        yield url


def _expected(decision: dict[str, object]) -> dict[str, object]:
    return {"category": decision["category"], "risk": decision["risk"],
            "tier": decision["tier"], "lead_department": decision["lead_department"],
            "cooperating": decision["cooperating_departments"]}


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
async def test_worked_example_through_preview(router: str, example: LabelledReport) -> None:
    body = orjson.loads(example.report.model_dump_json())
    body["prior_related"] = example.prior_related
    async with httpx.AsyncClient(base_url=router, headers=AUTH) as client:
        r = await client.post("/v1/routing/preview", json=body)
    assert r.status_code == 200, r.text
    assert _expected(r.json()) == dict(example.expect)


async def _routed(bootstrap: str, case_ids: set[str], within: float = 30.0
                  ) -> dict[str, dict[str, object]]:
    consumer = AIOKafkaConsumer(CASE_ROUTED, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest",
                                group_id=f"t-{uuid.uuid4().hex}", enable_auto_commit=False)
    await consumer.start()
    found: dict[str, dict[str, object]] = {}
    try:
        deadline = asyncio.get_running_loop().time() + within
        while set(found) < case_ids and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    event = orjson.loads(record.value)
                    if event["subject"] in case_ids:
                        found[event["subject"]] = event["data"]["decision"]
    finally:
        await consumer.stop()
    return found


async def _publish(bootstrap: str, reports: list[CaseReported]) -> None:
    producer = Producer(bootstrap, "test")
    await producer.start()
    try:
        await producer.send_all([
            Record(CASE_REPORTED, encode(CaseReportedEvent.wrap(r, source="test",
                                                                subject=r.case_id)),
                   key=r.case_id) for r in reports])
    finally:
        await producer.stop()


async def test_worked_examples_through_the_real_pipeline(router: str, broker: Broker,
                                                         unique: str) -> None:
    reports = {f"EX-{unique}-{e.id}": e for e in EXAMPLES if e.prior_related == 0}
    await _publish(broker.bootstrap, [
        e.report.model_copy(update={"case_id": cid, "external_id": cid})
        for cid, e in reports.items()])
    decisions = await _routed(broker.bootstrap, set(reports))
    assert set(decisions) == set(reports)
    wrong = {cid: _expected(d) for cid, d in decisions.items()
             if _expected(d) != dict(reports[cid].expect)}
    assert not wrong


async def test_repeat_reports_by_one_phone_raise_the_risk(router: str, broker: Broker,
                                                          unique: str) -> None:
    phone = "13700001234"
    person = PartyRef(phone_masked=mask_phone(phone),
                      phone_hash=keyed_hash("fengqiao-dev-hash-secret", "phone", phone))
    start = datetime.now(UTC) - timedelta(days=10)
    reports = [CaseReported(case_id=f"RP-{unique}-{i}", channel="hotline_12345",
                            external_id=f"RP-{unique}-{i}", received_at=start + timedelta(days=i),
                            text="楼上邻居装修噪音太大，影响休息。", reporter=person)
               for i in range(3)]
    for r in reports:  # one at a time: each must see the ones before it
        await _publish(broker.bootstrap, [r])
        await _routed(broker.bootstrap, {r.case_id})
    decisions = await _routed(broker.bootstrap, {r.case_id for r in reports})
    risks = [decisions[r.case_id]["risk"] for r in reports]
    assert risks == ["blue", "yellow", "orange"]
    assert any("repeat" in str(s) or "prior" in str(s)
               for s in decisions[reports[2].case_id]["risk_signals"])  # type: ignore[union-attr]


async def test_rules_file_reloads_when_it_changes_and_a_bad_file_is_refused(
        router: str, rules_file: Path) -> None:
    original = rules_file.read_text(encoding="utf-8")
    async with httpx.AsyncClient(base_url=router, headers=AUTH) as client:
        before = (await client.get("/v1/routing/rules")).json()
        try:
            assert before["version"] != "county-test-2"
            rules_file.write_text(re.sub(r"^version:.*$", "version: county-test-2", original,
                                         count=1, flags=re.MULTILINE), encoding="utf-8")
            await asyncio.sleep(1.2)
            after = (await client.get("/v1/routing/rules")).json()
            assert after["version"] == "county-test-2"
            assert after["last_error"] is None

            broken = re.sub(r"^version:.*$", "version: county-test-3", original, count=1,
                            flags=re.MULTILINE).replace("departments:", "departmentz:", 1)
            rules_file.write_text(broken, encoding="utf-8")
            await asyncio.sleep(1.2)
            refused = (await client.get("/v1/routing/rules")).json()
            assert refused["version"] == "county-test-2"
            assert refused["last_error"]
            reload = await client.post("/v1/routing/rules/reload")
            assert reload.status_code == 422
            preview = await client.post("/v1/routing/preview",
                                        json={"channel": "grid", "text": "邻居漏水"})
            assert preview.status_code == 200
            assert preview.json()["rules_version"] == "county-test-2"
        finally:
            rules_file.write_text(original, encoding="utf-8")
            await client.post("/v1/routing/rules/reload")


async def test_jurisdictions_by_level_parent_and_code(router: str) -> None:
    async with httpx.AsyncClient(base_url=router, headers=AUTH) as client:
        counties = (await client.get("/v1/jurisdictions", params={"level": "county"})).json()
        [county] = counties
        towns = (await client.get("/v1/jurisdictions",
                                  params={"parent": county["code"]})).json()
        detail = await client.get(f"/v1/jurisdictions/{towns[0]['code']}")
        missing = await client.get("/v1/jurisdictions/999999")
    assert len(towns) >= 3 and all(t["level"] == "town" for t in towns)
    assert detail.json()["ancestors"][0]["code"] == county["code"]
    assert all(c["level"] == "village" for c in detail.json()["children"])
    assert missing.status_code == 404
    # On the map: every node has its point; a village its boundary, its grids their centres.
    village = detail.json()["children"][0]
    assert all(n["centre"] is not None for n in [*towns, *detail.json()["children"]])
    async with httpx.AsyncClient(base_url=router, headers=AUTH) as client:
        shaped = (await client.get(f"/v1/jurisdictions/{village['code']}")).json()
    assert len(shaped["boundary"]) >= 3 and all(len(c) == 2 for c in shaped["boundary"])
    assert all(g["centre"] and g["level"] == "grid" for g in shaped["children"])
    assert detail.json()["boundary"] == []  # a town: its villages draw it


async def test_preview_rejects_bad_input_with_fields(router: str) -> None:
    async with httpx.AsyncClient(base_url=router, headers=AUTH) as client:
        r = await client.post("/v1/routing/preview", json={"channel": "fax", "text": ""})
    assert r.status_code == 422
    assert {f["field"] for f in r.json()["fields"]} == {"channel", "text"}


async def test_routed_events_say_they_are_the_router_s_own_in_a_header(
        router: str, broker: Broker, unique: str) -> None:
    """The router's own decisions carry `fq-correction-kind: none`, so that consumers (the
    router itself, which keeps only dispatchers' decisions) can skip them unparsed."""
    case_id = f"HD-{unique}"
    await _publish(broker.bootstrap, [EXAMPLES[0].report.model_copy(
        update={"case_id": case_id, "external_id": case_id})])
    await _routed(broker.bootstrap, {case_id})
    consumer = AIOKafkaConsumer(CASE_ROUTED, bootstrap_servers=broker.bootstrap,
                                auto_offset_reset="earliest",
                                group_id=f"t-{uuid.uuid4().hex}", enable_auto_commit=False)
    await consumer.start()
    headers: dict[str, bytes] = {}
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while not headers and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    if orjson.loads(record.value)["subject"] == case_id:
                        headers = dict(record.headers)
    finally:
        await consumer.stop()
    assert headers[CORRECTION_KIND_HEADER] == b"none"
