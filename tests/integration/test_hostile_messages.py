"""Poison and hostile input on every topic a service consumes: malformed, binary, empty,
deeply nested, wrongly typed, schema-violating and oversized messages, events of another
topic, and messages the database would refuse, published between valid ones. Every bad
message must land on `<topic>.dlq` once per consuming group with the reason in a header,
and every valid one around them must be processed, in good time.

The topics and groups come from the running services themselves (each runtime's consumer
loops), so a topic a service starts to consume is covered without touching this file."""

from __future__ import annotations

import asyncio
import importlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import select

from contracts.enums import CorrectionKind
from contracts.envelope import CloudEvent
from contracts.events import (
    CaseLifecycle,
    CaseLifecycleEvent,
    CasePersonalDataErased,
    CasePersonalDataErasedEvent,
    CaseReported,
    CaseReportedEvent,
    CaseRouted,
    CaseRoutedEvent,
    CaseSupervision,
    CaseSupervisionEvent,
    Correction,
    Explanation,
    RoutingDecision,
    Sla,
)
from contracts.topics import (
    CASE_LIFECYCLE,
    CASE_PERSONAL_DATA_ERASED,
    CASE_REPORTED,
    CASE_ROUTED,
    CASE_SUPERVISION,
    TOPICS,
    dlq,
    intake_topic,
)
from kit.bus import DLQ_REASON_HEADER
from kit.runtime import Runtime
from kit.settings import SERVICE_PORTS
from services.intake.domain import ADAPTERS
from tests.infra import (
    Isolated,
    serve,
    service_settings,
)

pytestmark = pytest.mark.integration

# Over the producers' default max request size (1 MB): no service of ours could publish it,
# so it comes from a hostile or broken producer, and the broker (Tansu) accepts it.
OVERSIZED_BYTES = 2 * 1024 * 1024
VALID_BETWEEN = 2  # valid messages before each bad one (and after the last)


@dataclass(frozen=True)
class Consumer:
    service: str
    group: str
    runtime: Runtime


@dataclass
class Platform:
    apps: dict[str, FastAPI]
    urls: dict[str, str]

    def consumers(self) -> dict[str, list[Consumer]]:
        """topic → the groups consuming it, from the services' own consumer loops."""
        out: dict[str, list[Consumer]] = {}
        for service, app in self.apps.items():
            runtime: Runtime = app.state.runtime
            for loop in runtime.loops:
                for topic in loop.subscriptions:
                    out.setdefault(topic, []).append(Consumer(service, loop.group, runtime))
        return out

    async def wait_until_assigned(self, within: float) -> None:
        """Until every consumer loop owns its partitions: a group joining while the test
        publishes could rebalance mid-batch and redeliver (and dead-letter twice)."""
        loops = [loop for app in self.apps.values() for loop in app.state.runtime.loops]
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if all(getattr(loop, "consumer", None) and loop.consumer.assignment()
                   for loop in loops):
                return
            await asyncio.sleep(0.1)
        raise TimeoutError("consumer groups did not get their partitions")

    def model_of(self, topic: str) -> type[BaseModel]:
        for app in self.apps.values():
            for loop in app.state.runtime.loops:
                if topic in loop.subscriptions:
                    return loop.subscriptions[topic].model
        raise KeyError(topic)


@pytest.fixture(scope="module")
async def platform(isolated: Isolated) -> AsyncIterator[Platform]:
    """The four services on a broker and database of their own: were a consumer to stall on
    a message, its committed offsets must not stall every later test as well."""
    apps = {}
    for service in SERVICE_PORTS:
        settings = service_settings(service, isolated.broker.bootstrap, isolated.database_url,
                                    isolated.directory, sms_enabled=False)
        apps[service] = importlib.import_module(f"services.{service}.main").create(settings)
    async with AsyncExitStack() as stack:
        urls = {name: await stack.enter_async_context(serve(app)) for name, app in apps.items()}
        platform = Platform(apps, urls)
        await platform.wait_until_assigned(within=30)
        yield platform


# --- valid messages ---------------------------------------------------------------------------

def _now() -> datetime:
    return datetime.now(UTC)


def _decision() -> RoutingDecision:
    now = _now()
    return RoutingDecision(
        category="neighbor", category_confidence=0.9, risk="blue", tier="village",
        lead_department="village_mediation", sla=Sla(accept_by=now + timedelta(days=1),
                                                     resolve_by=now + timedelta(days=7)),
        explanation=Explanation(zh="测试", en="test"), rules_version="test")


def valid_event(topic: str, case_id: str) -> CloudEvent[Any]:
    now = _now()
    if topic == CASE_REPORTED:
        return CaseReportedEvent.wrap(CaseReported(
            case_id=case_id, channel="hotline_12345", external_id=case_id, received_at=now,
            text="楼上邻居夜里噪音扰民"), source="test", subject=case_id)
    if topic == CASE_ROUTED:
        # A dispatcher's decision: a routed event every consumer of the topic acts on (the
        # router keeps only the dispatchers' decisions beside its own).
        return CaseRoutedEvent.wrap(CaseRouted(
            case_id=case_id, channel="grid", external_id=case_id, received_at=now,
            routed_at=now, decision=_decision(), correction=Correction(
                kind=CorrectionKind.REASSIGN, by="test", reason="test")),
            source="test", subject=case_id)
    if topic == CASE_LIFECYCLE:
        # An escalation of an Open311 case: a step every consumer of the topic acts on (the
        # router takes only escalations, intake's status follower only Open311 cases), so
        # that every valid one, and every storable hostile one, reaches every handler.
        return CaseLifecycleEvent.wrap(CaseLifecycle(
            case_id=case_id, version=3, from_status="in_mediation", to_status="escalated",
            actor="test", at=now, channel="open311", external_id=case_id),
            source="test", subject=case_id)
    if topic == CASE_SUPERVISION:
        return CaseSupervisionEvent.wrap(CaseSupervision(
            case_id=case_id, level="warning", sla_kind="acceptance", deadline=now,
            tier="village", at=now), source="test", subject=case_id)
    if topic == CASE_PERSONAL_DATA_ERASED:
        return CasePersonalDataErasedEvent.wrap(CasePersonalDataErased(
            case_id=case_id, reason="request", at=now), source="test", subject=case_id)
    raise KeyError(topic)


NATIVE_REQUIRED: dict[str, Callable[[str], dict[str, Any]]] = {
    "hotline_12345": lambda i: {"order_no": i, "content": "噪音扰民",
                                "received_at": "2026-11-20T08:00:00+08:00"},
    "grid": lambda i: {"report_id": i, "grid_code": "330699001001001",
                       "description": "占道经营"},
    "police": lambda i: {"incident_no": i, "summary": "两车刮擦发生口角"},
    "court": lambda i: {"case_no": i, "summary": "民间借贷纠纷", "claim_amount": 8000},
    "petition": lambda i: {"petition_no": i, "content": "拖欠工资"},
    "walk_in": lambda i: {"visit_id": i, "content": "宅基地界纠纷"},
}


# A person's name over its 64 characters, wherever each channel names people.
_NAME = "张三" * 100
LONG_NAME: dict[str, dict[str, Any]] = {
    "hotline_12345": {"caller_name": _NAME}, "grid": {"parties": [{"name": _NAME}]},
    "police": {"parties": [{"name": _NAME}]}, "court": {"plaintiffs": [{"name": _NAME}]},
    "petition": {"petitioners": [{"name": _NAME}]}, "walk_in": {"visitor": {"name": _NAME}},
}


def valid_payload(topic: str, model: type[BaseModel], tag: str) -> dict[str, Any]:
    """A valid message of `topic` as JSON, its external or case id carrying `tag`."""
    if issubclass(model, CloudEvent):
        return valid_event(topic, tag).model_dump(mode="json")
    channel = topic.split(".")[1]
    return NATIVE_REQUIRED[channel](tag)


# --- hostile messages -------------------------------------------------------------------------

@dataclass(frozen=True)
class Hostile:
    name: str
    value: bytes | None
    reason: str  # a fragment the dead-letter reason must contain
    # Valid by the contract but beyond what a consumer's database holds (a value longer than
    # its column, a NUL in text): PostgreSQL refuses it, so that consumer dead-letters it;
    # SQLite stores it, so that consumer processes it. Either way, nobody stalls.
    storable: bool = False

    def idempotency_key(self) -> str:
        assert self.value is not None
        return str(orjson.loads(self.value)["id"])


def _other_topic_event(topic: str, tag: str) -> dict[str, Any]:
    other = CASE_SUPERVISION if topic != CASE_SUPERVISION else CASE_REPORTED
    return valid_event(other, tag).model_dump(mode="json")


def hostile_messages(topic: str, model: type[BaseModel], tag: str) -> list[Hostile]:
    """Every kind of bad message for `topic`, each made from a fresh valid one (its own
    event id: two sharing one would be taken for a redelivery and skipped)."""
    def valid(name: str) -> dict[str, Any]:
        return valid_payload(topic, model, f"{tag}-{name}")

    def dumps(name: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> bytes:
        return orjson.dumps(change(valid(name)))

    schema = "schema violation"
    messages = [
        Hostile("empty", None, "empty message value"),
        Hostile("blank", b"", "not JSON"),
        Hostile("truncated", orjson.dumps(valid("truncated"))[:-7], "not JSON"),
        Hostile("binary", bytes(range(256)) * 4, "not JSON"),
        Hostile("deeply_nested", b"[" * 100_000 + b"]" * 100_000, "not JSON"),
        Hostile("array", b"[1, 2, 3]", schema),
        Hostile("string", b'"case.reported"', schema),
        Hostile("null", b"null", schema),
        Hostile("other_topic_event", orjson.dumps(_other_topic_event(topic, tag)), schema),
        Hostile("oversized", dumps("oversized", lambda m: {**m, "padding": "x" * OVERSIZED_BYTES}),
                "oversized"),
    ]
    if issubclass(model, CloudEvent):
        messages += [
            Hostile("wrongly_typed", dumps("wrongly_typed", lambda m: {
                **m, "id": 42, "time": "yesterday", "data": "not an object"}), schema),
            Hostile("missing_required", dumps("missing_required", lambda m: {
                k: v for k, v in m.items() if k != "data"}), schema),
            Hostile("out_of_range", dumps("out_of_range", lambda m: {
                **m, "specversion": "0.3", "data": {**m["data"], "case_id": "c" * 500}}),
                schema),
            Hostile("nul_character", dumps("nul", lambda m: {
                **m, "data": {**m["data"], "case_id": m["data"]["case_id"] + "\x00"}}), "",
                storable=True),
        ]
        if "external_id" in valid("probe")["data"]:
            messages.append(Hostile("too_long_for_columns", dumps("long", lambda m: {
                **m, "data": {**m["data"], "external_id": "e" * 300}}), "", storable=True))
    else:
        base = valid("probe")
        text = next(k for k in base if k in ("content", "summary", "description"))
        name = topic.split(".")[1]
        messages += [
            Hostile("wrongly_typed", dumps("wrongly_typed", lambda m: {
                k: [v] for k, v in m.items()}), schema),
            Hostile("missing_required", dumps("missing_required", lambda m: {
                k: v for k, v in m.items() if k != text}), schema),
            Hostile("out_of_range", dumps("out_of_range", lambda m: {**m, text: "字" * 5001}),
                    schema),
            Hostile("nul_character", dumps("nul", lambda m: {**m, text: "噪音\x00扰民"}),
                    schema),
            Hostile("name_too_long", dumps("long", lambda m: {**m, **LONG_NAME[name]}), schema),
        ]
    return messages


# --- the test ---------------------------------------------------------------------------------

@dataclass
class Sent:
    topic: str
    key: str
    partition: int
    offset: int
    model: type[BaseModel]
    value: bytes | None

    @property
    def idempotency_key(self) -> str:
        if issubclass(self.model, CloudEvent):
            assert self.value is not None
            return str(orjson.loads(self.value)["id"])
        return f"{self.topic}/{self.partition}/{self.offset}"


async def _dead_letters(bootstrap: str, topics: list[str], prefix: str) -> dict[str, list[Any]]:
    """Every record on the topics' .dlq whose key starts with `prefix`, by key: read up to
    the end offsets of now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    found: dict[str, list[Any]] = {}
    try:
        partitions = [TopicPartition(dlq(t), p) for t in topics
                      for p in sorted(consumer.partitions_for_topic(dlq(t)) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            positions = {tp: await consumer.position(tp) for tp in partitions}
            if all(positions[tp] >= ends[tp] for tp in partitions):
                break
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    if r.key and r.key.decode().startswith(prefix):
                        found.setdefault(r.key.decode(), []).append(r)
    finally:
        await consumer.stop()
    return found


async def _fates(consumers: dict[str, list[Consumer]], hostile: dict[str, tuple[str, Hostile]],
                 letters: dict[str, list[Any]]) -> list[str]:
    """What is wrong with the hostile messages' fates: each dead-lettered once per consuming
    group with its reason and source topic (or, if storable, processed instead)."""
    problems = []
    for key, (topic, bad) in sorted(hostile.items()):
        groups = consumers[topic]
        records = letters.get(key, [])
        stored = 0
        if bad.storable:
            for c in groups:
                stored += len(await _processed(c, [bad.idempotency_key()]))
        if len(records) + stored != len(groups):
            problems.append(f"{topic} {bad.name}: {len(records)} dead letter(s) and "
                            f"{stored} processed, for {len(groups)} consuming group(s)")
        for record in records:
            headers = dict(record.headers or ())
            reason = headers.get(DLQ_REASON_HEADER, b"").decode()
            if not reason or bad.reason not in reason:
                problems.append(f"{topic} {bad.name}: reason {reason[:160]!r} lacks "
                                f"{bad.reason!r}")
            if headers.get("fq-dlq-source-topic") != topic.encode():
                problems.append(f"{topic} {bad.name}: no source topic header")
    return problems


async def _processed(consumer: Consumer, keys: list[str]) -> set[str]:
    processed = consumer.runtime.tables.processed
    async with consumer.runtime.sessions() as session:
        rows = await session.execute(select(processed.c.event_id).where(
            processed.c.consumer == consumer.group, processed.c.event_id.in_(keys)))
        return set(rows.scalars())


async def _publish(platform: Platform, bootstrap: str, prefix: str
                   ) -> tuple[list[Sent], dict[str, tuple[str, Hostile]]]:
    """Per consumed topic, on one partition and in order: VALID_BETWEEN valid messages
    before each hostile one and after the last. (A hostile message that stalled its group
    would hold back every valid message after it.)"""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                max_request_size=4 * OVERSIZED_BYTES)
    await producer.start()
    valid: list[Sent] = []
    hostile: dict[str, tuple[str, Hostile]] = {}
    try:
        for topic in sorted(platform.consumers()):
            model = platform.model_of(topic)
            counter = 0

            async def send(value: bytes | None, key: str, topic: str = topic,
                           model: type[BaseModel] = model) -> Sent:
                meta = await (await producer.send(topic, value, key=key.encode(), partition=0))
                return Sent(topic, key, meta.partition, meta.offset, model, value)

            async def send_valid(topic: str = topic, model: type[BaseModel] = model) -> None:
                nonlocal counter
                counter += 1
                tag = f"{prefix}{topic.replace('.', '-')}-ok{counter}"
                valid.append(await send(orjson.dumps(valid_payload(topic, model, tag)), tag))

            for bad in hostile_messages(topic, model, f"{prefix}{topic.replace('.', '-')}"):
                for _ in range(VALID_BETWEEN):
                    await send_valid()
                key = f"{prefix}{topic}-{bad.name}"
                await send(bad.value, key)
                hostile[key] = (topic, bad)
            for _ in range(VALID_BETWEEN):
                await send_valid()
    finally:
        await producer.stop()
    return valid, hostile


async def _wait_processed(wanted: list[tuple[Consumer, str]], within: float
                          ) -> list[tuple[Consumer, str]]:
    """Wait until each consumer processed its key; returns those that did not in time."""
    pending = set(range(len(wanted)))
    deadline = time.monotonic() + within
    while pending and time.monotonic() < deadline:
        by_consumer: dict[tuple[str, str], list[int]] = {}
        for i in pending:
            by_consumer.setdefault((wanted[i][0].service, wanted[i][0].group), []).append(i)
        for indexes in by_consumer.values():
            done = await _processed(wanted[indexes[0]][0], [wanted[i][1] for i in indexes])
            pending -= {i for i in indexes if wanted[i][1] in done}
        if pending:
            await asyncio.sleep(0.2)
    return [wanted[i] for i in sorted(pending)]


async def test_every_bad_message_is_dead_lettered_with_its_reason_and_the_valid_ones_flow(
        platform: Platform, isolated: Isolated) -> None:
    consumers = platform.consumers()
    expected_topics = {CASE_REPORTED, CASE_ROUTED, CASE_LIFECYCLE, CASE_SUPERVISION,
                       *(intake_topic(c.value) for c in ADAPTERS)}
    assert expected_topics <= set(consumers), f"not consumed: {expected_topics - set(consumers)}"
    declared = {t.name for t in TOPICS}
    assert set(consumers) <= declared, "a service consumes a topic contracts/topics.py lacks"

    prefix = f"hostile-{uuid.uuid4().hex[:8]}-"
    started = time.monotonic()
    valid, hostile = await _publish(platform, isolated.broker.bootstrap, prefix)
    published = time.monotonic() - started

    # Every valid message processed by every group consuming its topic, in good time.
    late = await _wait_processed([(c, s.idempotency_key) for s in valid
                                  for c in consumers[s.topic]], within=45)
    flowed = time.monotonic() - started
    stuck = Counter(f"{c.group} on {key.split('/')[0]}" for c, key in late)
    assert not late, f"valid messages not processed within 45 s: {dict(stuck)}"

    # Every valid message after a hostile one was processed, so every hostile one has had
    # its fate, or is about to: dead letters are sent after the batch's effects, before its
    # offsets are committed, so wait a little for the last of them.
    deadline = time.monotonic() + 20
    while True:
        letters = await _dead_letters(isolated.broker.bootstrap, sorted(consumers), prefix)
        problems = await _fates(consumers, hostile, letters)
        if not problems or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert not problems, "\n".join(problems)
    print(f"\n{len(hostile)} hostile and {len(valid)} valid messages on {len(consumers)} "
          f"topics, published in {published:.1f}s; every valid one processed by every group "
          f"{flowed:.1f}s after the first was sent; "
          f"{sum(map(len, letters.values()))} dead letters")
