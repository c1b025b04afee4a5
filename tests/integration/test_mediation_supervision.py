"""Supervision (督办) on the real broker and database, with limits of seconds: warning at 80%,
level 1 at the deadline, level 2 at twice the limit to the tier above, each once per case
and limit, across a restart of mediation and with two mediation instances at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.enums import Risk, Status, Tier
from contracts.topics import CASE_SUPERVISION
from kit.settings import Settings
from services.mediation.handlers import CaseEvents
from services.mediation.main import create
from tests.infra import AUTH, Broker, serve, service_settings
from tests.integration.test_mediation_seeding import (
    CaseSpec,
    TopicCollector,
    runtime_of,
    seed,
    walk,
)

pytestmark = pytest.mark.integration

S = Status
ACCEPT_S, RESOLVE_S = 3.0, 5.0
EVERY_LEVEL = {(kind, level) for kind in ("acceptance", "resolution")
               for level in ("warning", "level_1", "level_2")}
RESOLUTION_ONLY = {k for k in EVERY_LEVEL if k[0] == "resolution"}


def settings(broker: Broker, database_url: str, run_dir: Path, accept_s: float = ACCEPT_S,
             resolve_s: float = RESOLVE_S) -> Settings:
    return service_settings("mediation", broker.bootstrap, database_url, run_dir,
                            acceptance_limit_seconds=accept_s, resolution_limit_seconds=resolve_s,
                            supervision_interval_seconds=0.1, case_gauges_interval_seconds=0.2)


def levels_by_case(events: list[dict[str, Any]]) -> dict[str, Counter[tuple[str, str]]]:
    out: dict[str, Counter[tuple[str, str]]] = {}
    for e in events:
        out.setdefault(e["subject"], Counter())[(e["data"]["sla_kind"], e["data"]["level"])] += 1
    return out


async def settle(collector: TopicCollector, ids: set[str], expected: int) -> list[dict[str, Any]]:
    """All expected events, then a further second (ten scans) to catch any repeat."""
    await collector.wait_for(ids, expected, within=60)
    await asyncio.sleep(1.0)
    return collector.about(ids)


async def supervision_total(url: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(url + "/metrics")).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("fq_supervision_events_total{"))


async def test_each_level_is_emitted_once_across_a_restart(
        broker: Broker, database_url: str, run_dir: Path) -> None:
    config = settings(broker, database_url, run_dir)
    events = CaseEvents(config)
    unaccepted = CaseSpec(risk=Risk.RED, tier=Tier.VILLAGE)
    accepted = CaseSpec()
    resolved = CaseSpec()
    long_overdue = CaseSpec(tier=Tier.TOWN, received_at=datetime.now(UTC) - timedelta(hours=1))
    ids = {c.case_id for c in (unaccepted, accepted, resolved, long_overdue)}

    async with TopicCollector(broker.bootstrap, CASE_SUPERVISION) as collector:
        first = create(config)
        async with serve(first) as url:
            before = await supervision_total(url)
            sessions = runtime_of(first).sessions
            await seed(sessions, events, [unaccepted, accepted, resolved, long_overdue])
            await walk(sessions, accepted.case_id, [S.ACCEPTED])
            await walk(sessions, resolved.case_id, [S.ACCEPTED, S.IN_MEDIATION, S.RESOLVED])
            # Stop once the red case is overdue for acceptance: its later levels are still ahead.
            await collector.wait_for({unaccepted.case_id}, 2, within=30)
        emitted_before_restart = len(collector.about(ids))
        assert 0 < emitted_before_restart < 15

        second = create(config)
        async with serve(second) as url:
            got = await settle(collector, ids, 15)
            metrics = (await httpx.AsyncClient().get(url + "/metrics")).text
            after = await supervision_total(url)
            async with httpx.AsyncClient(base_url=url, headers=AUTH) as client:
                red_case = (await client.get(f"/v1/cases/{unaccepted.case_id}")).json()
                supervised = {c["case_id"]: c["supervision_level"] for c in (await client.get(
                    "/v1/cases", params={"supervised": "true", "limit": 200})).json()["items"]}
                unsupervised = {c["case_id"] for c in (await client.get(
                    "/v1/cases", params={"supervised": "false", "limit": 200})).json()["items"]}

    by_case = levels_by_case(got)
    assert by_case[unaccepted.case_id] == Counter(EVERY_LEVEL)
    assert by_case[long_overdue.case_id] == Counter(EVERY_LEVEL)
    assert by_case[accepted.case_id] == Counter(RESOLUTION_ONLY)
    assert resolved.case_id not in by_case
    assert after - before >= 15

    red = {(e["data"]["sla_kind"], e["data"]["level"]): e["data"] for e in got
           if e["subject"] == unaccepted.case_id}
    assert red[("acceptance", "warning")]["tier"] == "village"
    assert red[("acceptance", "level_2")]["tier"] == "town"  # the tier above
    assert red[("acceptance", "level_1")]["lead_department"] == "village_mediation"
    deadline = datetime.fromisoformat(red[("acceptance", "level_1")]["deadline"])
    assert deadline == unaccepted.received_at + timedelta(seconds=ACCEPT_S)
    warned = datetime.fromisoformat(red[("acceptance", "warning")]["at"])
    assert warned >= unaccepted.received_at + timedelta(seconds=0.8 * ACCEPT_S)
    assert {(s["sla_kind"], s["level"]) for s in red_case["supervision"]} == EVERY_LEVEL
    assert red_case["overdue"] is True
    # The list says which cases are under supervision, and how far (the 督办 screen).
    assert supervised[unaccepted.case_id] == "level_2"
    assert supervised[accepted.case_id] == "level_2"
    assert resolved.case_id not in supervised and resolved.case_id in unsupervised
    assert unaccepted.case_id not in unsupervised

    # The leader keeps the gauges from the database.
    assert _gauge(metrics, "fq_red_cases_unaccepted_overdue") >= 1
    assert _gauge(metrics, 'fq_cases_overdue{department="village_mediation",tier="village"}'
                  ) >= 1


def _gauge(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not exported")


async def test_two_mediation_instances_at_once_emit_each_level_once(
        broker: Broker, database_url: str, run_dir: Path) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("several mediation processes share one PostgreSQL database, not a file")
    # Nothing is done by hand here, so the limits can be shorter.
    config = settings(broker, database_url, run_dir, accept_s=1.0, resolve_s=2.0)
    events = CaseEvents(config)
    cases = [CaseSpec(tier=Tier.TOWN) for _ in range(3)] + [
        CaseSpec(received_at=datetime.now(UTC) - timedelta(minutes=5)) for _ in range(2)]
    ids = {c.case_id for c in cases}

    async with TopicCollector(broker.bootstrap, CASE_SUPERVISION) as collector:
        one, two = create(config), create(config)
        async with serve(one) as first_url, serve(two) as second_url:
            await seed(runtime_of(one).sessions, events, cases)
            got = await settle(collector, ids, 30)
            async with httpx.AsyncClient() as client:
                ready = [(await client.get(u + "/readyz")).status_code
                         for u in (first_url, second_url)]

    assert ready == [200, 200]
    by_case = levels_by_case(got)
    assert {case_id: dict(levels) for case_id, levels in by_case.items()} == {
        case_id: dict(Counter(EVERY_LEVEL)) for case_id in ids}
    assert len({e["id"] for e in got}) == 30
