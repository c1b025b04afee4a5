"""The count after the storm: every accepted case, stage by stage, in the services' databases
and on the final broker's topics. A case is lost at a stage it never reached, doubled where
an effect exists twice, out of order where its versions or events came in the wrong order."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chaos.receiver import Receiver
from chaos.stream import Report
from contracts.topics import CASE_LIFECYCLE, CASE_REPORTED, CASE_ROUTED, all_topic_names, dlq
from kit.bus import EPOCH_HEADER, Producer

# What notify owes each case: the subscriptions the suite makes, and the kinds they ask for.
HOOKS = {"routed": ["routed"], "lifecycle": ["lifecycle"]}
EXPECTED_KINDS = {"routed": ["routed"], "lifecycle": ["lifecycle.reported", "lifecycle.routed"]}
EXPECTED_HISTORY = [(1, "reported"), (2, "routed")]


@dataclass(frozen=True)
class OnPurpose:
    """A case staff corrected on purpose (returned 退回, or assigned by hand 改派 / 人工分派):
    routed once per routing round, with the steps of its corrections in its history. It is
    still one case: its first routing, its first two steps and each version exactly once."""

    rounds: int   # mediation's routing round: routed events expected on case.routed.v1
    steps: int    # history entries mediation holds: lifecycle webhooks expected
    routed_steps: int  # of which to `routed` (each a lifecycle.routed delivery)

    STATUSES = frozenset({"routed", "awaiting_dispatch", "accepted", "in_mediation",
                          "resolved", "closed", "merged"})


# A merge (合并) is a correction on purpose too: the report is still exactly one case, with
# its own row, history and events; it is only worked on its main case.
MERGE_STEP = "merged"


def corrections_of(returns_and_reassignments: int, history: list[tuple[int, str]]) -> int:
    """How often a case was corrected on purpose: returned, assigned by hand, merged."""
    return returns_and_reassignments + sum(1 for _, s in history if s == MERGE_STEP)


def on_purpose(corrections: int, routing_round: int,
               history: list[tuple[int, str]]) -> OnPurpose | None:
    """The expectations of a corrected case, or None for one routed once as the suite does."""
    if corrections <= 0:
        return None
    return OnPurpose(rounds=max(routing_round, 1), steps=len(history),
                     routed_steps=sum(1 for _, s in history if s == "routed"))


@dataclass
class Stage:
    """One line of the summary table."""

    name: str
    expected: int = 0
    reached: int = 0
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    note: str = ""

    def count(self, case_id: str, found: int, wanted: int = 1) -> None:
        """Record one expected effect that exists `found` times."""
        self.expected += 1
        if found == 0:
            self.lost.append(case_id)
        else:
            self.reached += 1
            if found > wanted:
                self.doubled.append(case_id)

    def count_many(self, case_id: str, found: int, wanted: int) -> None:
        """Record `wanted` expected effects of one case, of which `found` exist."""
        self.expected += wanted
        self.reached += min(found, wanted)
        self.lost += [case_id] * max(0, wanted - found)
        if found > wanted:
            self.doubled.append(case_id)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.doubled or self.out_of_order)


@dataclass
class Findings:
    stages: list[Stage]
    dead_letters: dict[str, int]
    republished: dict[str, int]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.stages) and not any(self.dead_letters.values())

    @property
    def lost(self) -> int:
        return sum(len(s.lost) for s in self.stages)

    @property
    def doubled(self) -> int:
        return sum(len(s.doubled) for s in self.stages)

    @property
    def out_of_order(self) -> int:
        return sum(len(s.out_of_order) for s in self.stages)

    def examples(self, limit: int = 5) -> list[str]:
        lines = []
        for stage in self.stages:
            for label, ids in (("lost", stage.lost), ("doubled", stage.doubled),
                               ("out of order", stage.out_of_order)):
                if ids:
                    lines.append(f"{stage.name}: {label}: {', '.join(ids[:limit])}"
                                 + (" ..." if len(ids) > limit else ""))
        return lines


async def rows(engine: AsyncEngine, sql: str) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql))).all())


async def check(engine: AsyncEngine, bootstrap: str, reports: list[Report],
                receiver: Receiver, subscriptions: dict[str, str]) -> Findings:
    """Count every effect of every case intake accepted (or stored without answering)."""
    accepted = {r.case_id: r for r in reports if r.case_id is not None}
    stored: dict[str, Any]
    stored = {row.case_id: row for row in await rows(
        engine, "SELECT case_id, channel, external_id FROM intake_cases")}
    cases = sorted(set(accepted) | set(stored))
    phones = {case_id for case_id, r in accepted.items() if "caller_phone" in r.payload}

    intake = Stage("intake: case stored")
    for case_id in cases:
        intake.count(case_id, 1 if case_id in stored else 0)
    extra = len(set(stored) - set(accepted))
    if extra:
        intake.note = f"{extra} stored without a 2xx reaching the client (retried: 200)"

    decisions = Counter(row.case_id for row in await rows(
        engine, "SELECT case_id FROM router_decisions WHERE routing_round = 1"))
    router = Stage("router: decision")
    for case_id in cases:
        router.count(case_id, decisions[case_id])

    mediation_rows = await rows(engine, "SELECT case_id, status, routing_round, "
                                        "returns + reassignments AS corrections "
                                        "FROM mediation_cases")
    status = {row.case_id: row.status for row in mediation_rows}
    history: dict[str, list[tuple[int, str]]] = defaultdict(list)
    # Lifecycle steps only: notes that are no step (supervision notices, merges on the
    # main case, ownership) carry no version and publish no lifecycle event.
    for row in await rows(engine, "SELECT case_id, version, to_status FROM "
                                  "mediation_case_history WHERE version IS NOT NULL "
                                  "ORDER BY id"):
        history[row.case_id].append((row.version, row.to_status))
    corrected = {row.case_id: expected for row in mediation_rows if (expected := on_purpose(
        corrections_of(row.corrections, history.get(row.case_id, [])), row.routing_round,
        history.get(row.case_id, []))) is not None}
    routed = Stage("mediation: case routed")
    entries = Stage("mediation: history entries")
    for case_id in cases:
        wanted = OnPurpose.STATUSES if case_id in corrected else {"routed"}
        routed.count(case_id, 1 if status.get(case_id) in wanted else 0)
        steps = history.get(case_id, [])
        for version, to_status in EXPECTED_HISTORY:
            entries.count(case_id, steps.count((version, to_status)))
        if (len(steps) > len(EXPECTED_HISTORY) and case_id not in corrected
                and case_id not in entries.doubled):
            entries.doubled.append(case_id)
        versions = [v for v, _ in steps]
        if versions != sorted(set(versions)):
            entries.out_of_order.append(case_id)

    deliveries: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for row in await rows(engine, "SELECT subscription_id, case_id, kind, status FROM "
                                  "notify_deliveries ORDER BY id"):
        deliveries[(row.subscription_id, row.case_id)].append((row.kind, row.status))
    notify = Stage("notify: webhook deliveries")
    undelivered = 0
    for hook, kinds in EXPECTED_KINDS.items():
        for case_id in cases:
            found = deliveries.get((subscriptions[hook], case_id), [])
            found_kinds = [k for k, _ in found]
            for kind in kinds:
                times = 1
                if kind == "lifecycle.routed" and case_id in corrected:
                    times = corrected[case_id].routed_steps
                notify.count(case_id, found_kinds.count(kind), wanted=times)
            undelivered += sum(1 for _, s in found if s != "succeeded")
            ordered = [k for k in found_kinds if k in kinds]
            if ordered != [k for k in kinds if k in ordered]:
                notify.out_of_order.append(case_id)
    if undelivered:
        notify.note = f"{undelivered} not (yet) succeeded"
    sms = Stage("notify: SMS on receipt")
    for case_id in sorted(phones):
        sms.count(case_id, [k for k, _ in deliveries.get(("sms", case_id), [])]
                  .count("sms.received"))

    topics, republished = await topic_stages(bootstrap, cases, corrected)
    webhooks = Stage("webhooks received")
    for hook, kinds in EXPECTED_KINDS.items():
        # Distinct messages (webhook-id) per case: copies of one message count once.
        got = Counter(receiver.events[key][0] for key in receiver.received if key[0] == hook)
        for case_id in cases:
            wanted = len(kinds)
            if case_id in corrected:  # one message per round, or per step
                wanted = (corrected[case_id].rounds if hook == "routed"
                          else corrected[case_id].steps)
            webhooks.count_many(case_id, got[case_id], wanted=wanted)
        copies = receiver.copies(hook)
        if copies:
            webhooks.note += f"{hook}: {copies} resent copies (at least once) "
    # Extra copies at a receiver are the at-least-once promise of webhooks, not a double:
    # the notify row above is the effect. A missing one is a loss.
    webhooks.doubled = []
    dead = await dead_letters(bootstrap)
    return Findings([intake, router, routed, entries, notify, sms, *topics, webhooks],
                    dead, republished)


async def broker_epoch(bootstrap: str) -> int:
    producer = Producer(bootstrap, "fengqiao-chaos-check")
    await producer.start()
    try:
        return await producer.epoch.current()
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, epoch: int
                     ) -> tuple[list[tuple[int, int, dict[str, Any]]], int]:
    """Every record of `topic` as (partition, offset, JSON value), as consumers take them:
    without the copies that crossed a broker restart (stamped with an older epoch), which
    are counted instead."""
    stamp = (EPOCH_HEADER, str(epoch).encode())
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    out: list[tuple[int, int, dict[str, Any]]] = []
    crossed = 0
    try:
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            await consumer.topics()
            partitions = [TopicPartition(topic, p)
                          for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return out, crossed
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        idle = 0
        # Until the end, or until nothing comes for a while (Tansu may count records it
        # never serves, e.g. after writes to a topic that did not exist yet).
        while idle < 10 and any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            idle = 0 if batch else idle + 1
            for tp, records in batch.items():
                taken = [r for r in records if _stamped_with(r.headers, stamp)]
                crossed += len(records) - len(taken)
                out += [(tp.partition, r.offset, orjson.loads(r.value)) for r in taken if r.value]
    finally:
        await consumer.stop()
    return out, crossed


def _stamped_with(headers: Any, stamp: tuple[str, bytes]) -> bool:
    epochs = [(name, bytes(value)) for name, value in headers or () if name == stamp[0]]
    return not epochs or epochs[0] == stamp


async def topic_stages(bootstrap: str, cases: Iterable[str],
                       corrected: dict[str, OnPurpose] | None = None
                       ) -> tuple[list[Stage], dict[str, int]]:
    """Every event of every case is on the final broker (the replay after each broker
    restart publishes the kept rows again), once per event id, in order per case. A case
    corrected on purpose has one routed event per round."""
    corrected = corrected or {}
    stages = []
    republished = {}
    wanted = list(cases)
    epoch = await broker_epoch(bootstrap)
    for topic in (CASE_REPORTED, CASE_ROUTED, CASE_LIFECYCLE):
        records, crossed = await read_topic(bootstrap, topic, epoch)
        republished[topic] = len(records) + crossed - len({r[2]["id"] for r in records})
        # The distinct events of each case, in the order they first appear.
        first_seen: dict[str, dict[str, tuple[int, int, int]]] = defaultdict(dict)
        for partition, offset, event in sorted(records, key=lambda r: (r[0], r[1])):
            version = int(event.get("data", {}).get("version") or 0)
            first_seen[str(event["subject"])].setdefault(event["id"], (partition, offset,
                                                                       version))
        stage = Stage(f"topic {topic}")
        for case_id in wanted:
            events = sorted(first_seen.get(case_id, {}).values())
            if topic == CASE_LIFECYCLE:
                versions = [v for _, _, v in events]
                for version, _ in EXPECTED_HISTORY:
                    stage.count(case_id, versions.count(version))
                if versions != sorted(versions):
                    stage.out_of_order.append(case_id)
            elif topic == CASE_ROUTED and case_id in corrected:
                stage.count(case_id, len(events), wanted=corrected[case_id].rounds)
            else:
                stage.count(case_id, len(events))
        stages.append(stage)
    return stages, republished


async def dead_letters(bootstrap: str) -> dict[str, int]:
    """How many messages each dead-letter topic holds (none is expected: no poison here)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()
        counts = {}
        for topic in (t for t in all_topic_names() if t.endswith(dlq(""))):
            partitions = [TopicPartition(topic, p)
                          for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if partitions:
                ends = await asyncio.wait_for(consumer.end_offsets(partitions), 10)
                counts[topic] = sum(ends.values())
        return counts
    finally:
        await consumer.stop()
