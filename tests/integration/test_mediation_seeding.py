"""Seeding cases for the mediation tests without the whole pipeline, and the check that a
case seeded through the broker (routed before reported, as topics may deliver them) is
the same case mediation serves.

The helpers here build reported and routed events with chosen routing decisions, apply them
through mediation's own handlers, walk cases through the lifecycle, and collect events
from a topic; the other test_mediation_* modules import them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.api_mediation import TransitionRequest
from contracts.enums import Category, Channel, Department, Risk, Status, Tier
from contracts.events import (
    CaseReported,
    CaseReportedEvent,
    CaseRouted,
    CaseRoutedEvent,
    Explanation,
    JurisdictionRef,
    RoutingDecision,
    Sla,
)
from contracts.topics import CASE_REPORTED, CASE_ROUTED
from kit.bus import Producer, Record, encode
from kit.consumer import Delivery
from kit.runtime import Runtime
from services.mediation.handlers import CaseEvents, transition_case
from services.mediation.main import create
from services.mediation.store import Case
from tests.infra import AUTH, Broker, eventually, serve, service_settings

pytestmark = pytest.mark.integration

FAR = datetime(2099, 1, 1, tzinfo=UTC)

# The data each step needs, so a walk or a generated transition can take any step.
STEP_DATA: dict[Status, dict[str, Any]] = {
    Status.ACCEPTED: {"mediator": "王调解员"},
    Status.RESOLVED: {"agreement": "双方达成分期还款协议", "agreement_amount": 8000},
    Status.FAILED: {"failure_reason": "被申请人拒绝调解"},
    Status.REFERRED: {"referral": "litigation"},
    Status.VISITED: {"visit_notes": "电话回访，当事人表示满意"},
    Status.RATED: {"satisfaction": 5},
}


@dataclass
class CaseSpec:
    """One seeded case: what was reported and what the router decided."""

    case_id: str = field(default_factory=lambda: f"T{uuid.uuid4().hex[:14]}")
    channel: Channel = Channel.HOTLINE_12345
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    text: str = "楼上邻居每天深夜噪音扰民，多次沟通无果。"
    category: Category = Category.NEIGHBOR
    risk: Risk = Risk.BLUE
    tier: Tier = Tier.VILLAGE
    lead: Department = Department.VILLAGE_MEDIATION
    cooperating: list[Department] = field(default_factory=list)
    jurisdiction: str | None = None
    prior_related: int = 0
    accept_by: datetime = FAR
    resolve_by: datetime = FAR


def reported_event(spec: CaseSpec) -> CaseReportedEvent:
    return CaseReportedEvent.wrap(CaseReported(
        case_id=spec.case_id, channel=spec.channel, external_id=f"X-{spec.case_id}",
        received_at=spec.received_at, text=spec.text), source="test", subject=spec.case_id)


def routed_event(spec: CaseSpec) -> CaseRoutedEvent:
    signals = [f"prior_related:{spec.prior_related}"] if spec.prior_related else []
    decision = RoutingDecision(
        category=spec.category, category_confidence=0.9, risk=spec.risk, risk_signals=signals,
        tier=spec.tier, lead_department=spec.lead, cooperating_departments=spec.cooperating,
        jurisdiction=JurisdictionRef(code=spec.jurisdiction, name="测试", level="village")
        if spec.jurisdiction else None,
        sla=Sla(accept_by=spec.accept_by, resolve_by=spec.resolve_by),
        explanation=Explanation(zh="测试路由", en="routed by the test"), rules_version="test")
    return CaseRoutedEvent.wrap(CaseRouted(
        case_id=spec.case_id, channel=spec.channel, external_id=f"X-{spec.case_id}",
        received_at=spec.received_at, routed_at=spec.received_at, decision=decision),
        source="test", subject=spec.case_id)


def _delivery(topic: str, event: CaseReportedEvent | CaseRoutedEvent) -> Delivery:
    return Delivery(topic, 0, 0, event.subject, event, encode(event))


async def seed(sessions: async_sessionmaker[AsyncSession], events: CaseEvents,
               specs: Sequence[CaseSpec]) -> None:
    """Reported and routed, through mediation's own handlers, in one transaction."""
    async with sessions() as session, session.begin():
        for spec in specs:
            await events.handle_batch(session, [
                _delivery(CASE_REPORTED, reported_event(spec))])
            await events.handle_batch(session, [_delivery(CASE_ROUTED, routed_event(spec))])


async def walk(sessions: async_sessionmaker[AsyncSession], case_id: str,
               steps: Sequence[Status], data: dict[Status, dict[str, Any]] | None = None
               ) -> None:
    """Take the case through `steps` as staff would (the same handler as the API)."""
    for step in steps:
        async with sessions() as session, session.begin():
            case = await session.get(Case, case_id)
            assert case is not None
            await transition_case(session, case, TransitionRequest(
                to_status=step, actor="test", expected_version=case.version,
                data={**STEP_DATA.get(step, {}), **(data or {}).get(step, {})}),
                datetime.now(UTC))


def runtime_of(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


class TopicCollector:
    """Everything on a topic from its beginning, by manual assignment (no group to join)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.events: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> TopicCollector:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap,
                                          enable_auto_commit=False)
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(self.topic)
        if not partitions:
            await self._consumer.force_metadata_update()
            partitions = self._consumer.partitions_for_topic(self.topic) or {0}
        assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(assigned)
        await self._consumer.seek_to_beginning(*assigned)
        self._task = asyncio.create_task(self._collect())
        return self

    async def _collect(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            for records in batch.values():
                self.events += [orjson.loads(r.value) for r in records if r.value]
            if batch:
                self._arrived.set()

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()

    def about(self, case_ids: set[str]) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("subject") in case_ids]

    async def wait_for(self, case_ids: set[str], count: int, within: float = 30.0
                       ) -> list[dict[str, Any]]:
        """Wait until `count` events about these cases arrived (or time runs out)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            self._arrived.clear()  # before looking, so an arrival meanwhile is not missed
            remaining = deadline - loop.time()
            if len(self.about(case_ids)) >= count or remaining <= 0:
                return self.about(case_ids)
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return self.about(case_ids)


@pytest.fixture(scope="module")
async def mediation(broker: Broker, database_url: str, run_dir: Path) -> AsyncIterator[str]:
    app = create(service_settings("mediation", broker.bootstrap, database_url, run_dir))
    async with serve(app) as url:
        yield url


async def test_a_case_routed_before_it_is_reported_is_one_case_with_both(
        mediation: str, broker: Broker) -> None:
    spec = CaseSpec(tier=Tier.TOWN, lead=Department.JUDICIAL_OFFICE,
                    cooperating=[Department.POLICE_STATION], jurisdiction="330106001001")
    producer = Producer(broker.bootstrap, "mediation-test")
    await producer.start()
    try:
        for topic, event in ((CASE_ROUTED, routed_event(spec)),
                             (CASE_REPORTED, reported_event(spec))):
            await producer.send_all([Record(topic=topic, value=encode(event), key=spec.case_id)])
    finally:
        await producer.stop()
    async with httpx.AsyncClient(base_url=mediation, headers=AUTH) as client:
        async def fetch() -> httpx.Response:
            return await client.get(f"/v1/cases/{spec.case_id}")
        got = await eventually(fetch, lambda r: r.status_code == 200 and r.json()["text"],
                               within=40)
    assert got.status_code == 200, got.text
    case = got.json()
    assert (case["status"], case["version"]) == ("routed", 2)
    assert (case["tier"], case["lead_department"]) == ("town", "judicial_office")
    assert case["cooperating_departments"] == ["police_station"]
    assert case["text"] == spec.text
    assert case["allowed_transitions"] == ["accepted", "returned", "returned_to_source",
                                           "withdrawn"]
    assert [h["to_status"] for h in case["history"]] == ["reported", "routed"]
    assert case["history"][0]["at"] == case["received_at"]
