"""Escalation through the real router on the real broker: a case whose mediation failed at
the village is escalated, routed again by the router to the tier above, and comes back to
mediation as the same case, with its history, the new tier and the new lead department."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from contracts.enums import Channel, Status
from contracts.events import CaseReported, CaseReportedEvent
from contracts.topics import CASE_LIFECYCLE, CASE_REPORTED
from kit.bus import Producer, Record, encode
from services.mediation.main import create as create_mediation
from services.router.main import create as create_router
from tests.infra import AUTH, Broker, eventually, serve, service_settings
from tests.integration.test_mediation_seeding import STEP_DATA, TopicCollector

pytestmark = pytest.mark.integration

S = Status


@pytest.fixture(scope="module")
async def services(broker: Broker, database_url: str, run_dir: Path
                   ) -> AsyncIterator[tuple[str, str]]:
    router = create_router(service_settings("router", broker.bootstrap, database_url, run_dir))
    mediation = create_mediation(service_settings("mediation", broker.bootstrap, database_url,
                                                  run_dir))
    async with serve(router) as router_url, serve(mediation) as mediation_url:
        yield router_url, mediation_url


async def test_an_escalated_case_is_routed_again_to_the_tier_above_and_keeps_its_history(
        services: tuple[str, str], broker: Broker, unique: str) -> None:
    _, mediation = services
    case_id = f"ESC{unique}"
    report = CaseReported(case_id=case_id, channel=Channel.HOTLINE_12345,
                          external_id=f"ESC-{unique}", received_at=datetime.now(UTC),
                          text="楼上邻居每天深夜噪音扰民，多次沟通无果。")
    producer = Producer(broker.bootstrap, "escalation-test")
    await producer.start()
    try:
        event = CaseReportedEvent.wrap(report, source="intake", subject=case_id)
        await producer.send_all([Record(topic=CASE_REPORTED, value=encode(event), key=case_id)])
    finally:
        await producer.stop()

    async with httpx.AsyncClient(base_url=mediation, headers=AUTH, timeout=30) as client, \
            TopicCollector(broker.bootstrap, CASE_LIFECYCLE) as lifecycle:
        async def fetch() -> httpx.Response:
            return await client.get(f"/v1/cases/{case_id}")

        first = (await eventually(fetch, lambda r: r.status_code == 200
                                  and r.json()["status"] == "routed", within=60)).json()
        assert (first["tier"], first["lead_department"], first["routing_round"]) == (
            "village", "village_mediation", 1)

        version = first["version"]
        for step in (S.ACCEPTED, S.IN_MEDIATION, S.FAILED, S.ESCALATED):
            r = await client.post(f"/v1/cases/{case_id}/transitions", json={
                "to_status": step.value, "actor": "村调委", "expected_version": version,
                "reason": "调解未成，提请上级" if step is S.ESCALATED else None,
                "data": STEP_DATA.get(step, {})})
            assert r.status_code == 200, r.text
            version = r.json()["case"]["version"]

        again = (await eventually(fetch, lambda r: r.json()["routing_round"] == 2
                                  and r.json()["status"] == "routed", within=60)).json()
        published = await lifecycle.wait_for({case_id}, 7)

    assert again["case_id"] == case_id
    assert (again["tier"], again["lead_department"]) == ("town", "judicial_office")
    assert again["version"] == version + 1
    assert [h["to_status"] for h in again["history"]] == [
        "reported", "routed", "accepted", "in_mediation", "failed", "escalated", "routed"]
    escalated_at = datetime.fromisoformat(again["history"][5]["at"])
    # The new round's limits count from the escalation, and it must be accepted again.
    assert datetime.fromisoformat(again["accept_by"]) > escalated_at
    assert again["allowed_transitions"] == ["accepted", "returned", "returned_to_source",
                                            "withdrawn"]
    assert again["decision"]["tier"] == "town"
    assert [e["data"]["to_status"] for e in published][-2:] == ["escalated", "routed"]
    assert published[-1]["data"]["tier"] == "town"
