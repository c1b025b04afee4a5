"""The lifecycle over real HTTP: every legal and illegal transition generated from the state
machine, step data, optimistic concurrency, limited keys, and the case list's filters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlmodel import col

from contracts.api_mediation import TransitionRequest
from contracts.enums import Category, Channel, Department, Risk, Status, Tier
from contracts.topics import CASE_LIFECYCLE
from services.mediation.domain.lifecycle import (
    CLOSES_AUTOMATICALLY,
    EVENT_ONLY,
    TRANSITIONS,
    StaleVersion,
)
from services.mediation.domain.lifecycle import STEP_DATA as REQUIRED_DATA
from services.mediation.handlers import CaseEvents, transition_case
from services.mediation.main import create
from services.mediation.store import Case
from tests.infra import AUTH, Broker, serve, service_settings
from tests.integration.test_mediation_seeding import (
    STEP_DATA,
    CaseSpec,
    TopicCollector,
    runtime_of,
    seed,
    walk,
)

pytestmark = pytest.mark.integration

S = Status


class Mediation:
    def __init__(self, app: FastAPI, url: str) -> None:
        self.app = app
        self.url = url
        self.runtime = runtime_of(app)
        self.events = CaseEvents(self.runtime.settings)

    async def seed(self, *specs: CaseSpec) -> None:
        await seed(self.runtime.sessions, self.events, specs)

    async def force_status(self, case_id: str, status: Status) -> None:
        """Put a case straight into `status` (test setup for the generated transitions)."""
        async with self.runtime.sessions() as session, session.begin():
            await session.execute(update(Case).where(col(Case.case_id) == case_id)
                                  .values(status=status.value, version=col(Case.version) + 1))

    async def key(self, **limits: Any) -> dict[str, str]:
        _, token = await self.runtime.keys.create(
            "limited", ["cases:read", "cases:write", "stats:read"], **limits)
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
async def mediation(broker: Broker, database_url: str, run_dir: Path
                    ) -> AsyncIterator[Mediation]:
    app = create(service_settings("mediation", broker.bootstrap, database_url, run_dir))
    async with serve(app) as url:
        yield Mediation(app, url)


@pytest.fixture
async def client(mediation: Mediation) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=mediation.url, headers=AUTH, timeout=30) as c:
        yield c


async def move(client: httpx.AsyncClient, case_id: str, to: Status, version: int,
               headers: dict[str, str] | None = None, **data: Any) -> httpx.Response:
    return await client.post(f"/v1/cases/{case_id}/transitions", headers=headers, json={
        "to_status": to.value, "actor": "测试员", "reason": "test",
        "expected_version": version, "data": {**STEP_DATA.get(to, {}), **data}})


PAIRS = [(current, target) for current in TRANSITIONS for target in Status]


@pytest.mark.parametrize("current,target", PAIRS, ids=[f"{c}->{t}" for c, t in PAIRS])
async def test_every_transition_the_state_machine_allows_and_no_other(
        mediation: Mediation, client: httpx.AsyncClient, current: Status,
        target: Status) -> None:
    spec = CaseSpec()
    await mediation.seed(spec)
    await mediation.force_status(spec.case_id, current)
    version = (await client.get(f"/v1/cases/{spec.case_id}")).json()["version"]

    r = await move(client, spec.case_id, target, version)

    legal = target in TRANSITIONS[current] and target not in EVENT_ONLY
    if legal:
        assert r.status_code == 200, r.text
        steps = r.json()["transitions"]
        assert (steps[0]["from_status"], steps[0]["to_status"]) == (current, target)
        final = CLOSES_AUTOMATICALLY.get(target, target)
        assert r.json()["case"]["status"] == final
        assert r.json()["case"]["version"] == version + len(steps)
    else:
        assert r.status_code == 409, r.text
        body = r.json()
        assert body["error"] == "illegal_transition"
        assert body["current_status"] == current
        assert body["allowed"] == sorted(TRANSITIONS[current] - EVENT_ONLY)
        after = (await client.get(f"/v1/cases/{spec.case_id}")).json()
        assert (after["status"], after["version"]) == (current, version)


async def test_a_case_is_worked_from_acceptance_to_archive_and_every_step_is_published(
        mediation: Mediation, client: httpx.AsyncClient, broker: Broker) -> None:
    spec = CaseSpec()
    await mediation.seed(spec)
    path = [S.ACCEPTED, S.IN_MEDIATION, S.RESOLVED, S.CLOSED, S.VISITED, S.RATED, S.ARCHIVED]
    async with TopicCollector(broker.bootstrap, CASE_LIFECYCLE) as lifecycle:
        version = 2
        for step in path:
            r = await move(client, spec.case_id, step, version)
            assert r.status_code == 200, r.text
            version = r.json()["case"]["version"]
        events = await lifecycle.wait_for({spec.case_id}, 9)
    case = (await client.get(f"/v1/cases/{spec.case_id}")).json()
    assert [h["to_status"] for h in case["history"]] == [S.REPORTED, S.ROUTED, *path]
    assert [h["version"] for h in case["history"]] == list(range(1, 10))
    assert case["history"][4]["data"] == STEP_DATA[S.RESOLVED]
    assert (case["mediator"], case["satisfaction"]) == ("王调解员", 5)
    assert case["closed_at"] is not None and case["allowed_transitions"] == []
    assert [(e["data"]["to_status"], e["data"]["version"]) for e in events] == [
        (s.value, v) for s, v in zip([S.REPORTED, S.ROUTED, *path], range(1, 10), strict=True)]
    assert events[-1]["data"]["actor"] == "测试员"


async def test_a_referral_onward_closes_the_case_in_the_same_step(
        mediation: Mediation, client: httpx.AsyncClient) -> None:
    spec = CaseSpec()
    await mediation.seed(spec)
    await walk(mediation.runtime.sessions, spec.case_id, [S.ACCEPTED, S.IN_MEDIATION, S.FAILED])
    r = await move(client, spec.case_id, S.REFERRED, 5, referral="arbitration")
    assert r.status_code == 200, r.text
    assert [(t["to_status"], t["version"]) for t in r.json()["transitions"]] == [
        ("referred", 6), ("closed", 7)]
    assert r.json()["case"]["referral"] == "arbitration"
    assert r.json()["case"]["closed_at"] is not None
    assert r.json()["transitions"][1]["actor"] == "urn:fengqiao:mediation"


@pytest.mark.parametrize("target,field", [(t, f) for t, step in REQUIRED_DATA.items()
                                          for f in step.required])
async def test_a_step_without_its_data_is_422_naming_the_field(
        mediation: Mediation, client: httpx.AsyncClient, target: Status, field: str) -> None:
    spec = CaseSpec()
    await mediation.seed(spec)
    data = {k: v for k, v in STEP_DATA[target].items() if k != field}
    r = await client.post(f"/v1/cases/{spec.case_id}/transitions", json={
        "to_status": target.value, "actor": "x", "expected_version": 2, "data": data})
    assert r.status_code == 422, r.text
    assert f"data.{field}" in {f["field"] for f in r.json()["fields"]}


@pytest.mark.parametrize("body,fields", [
    ({"to_status": "rated", "actor": "x", "expected_version": 2,
      "data": {"satisfaction": 6}}, {"data.satisfaction"}),
    ({"to_status": "accepted", "actor": "x", "expected_version": 2,
      "data": {"satisfation": 5}}, {"data.satisfation"}),
    ({"to_status": "accepted", "actor": "x", "expected_version": 2,
      "data": {"agreement": "x"}}, {"data.agreement"}),
    ({"to_status": "referred", "actor": "x", "expected_version": 2,
      "data": {"referral": "mediation"}}, {"data.referral"}),
    ({"to_status": "accepted", "actor": "", "expected_version": 0},
     {"actor", "expected_version"}),
    ({"to_status": "done", "actor": "x", "expected_version": 2}, {"to_status"}),
    ({"to_status": "failed", "actor": "x\u0000", "expected_version": 2,
      "data": {"failure_reason": "\u0000"}}, {"actor", "data.failure_reason"}),
])
async def test_invalid_transition_bodies_are_422_with_fields(
        mediation: Mediation, client: httpx.AsyncClient, body: dict[str, Any],
        fields: set[str]) -> None:
    spec = CaseSpec()
    await mediation.seed(spec)
    r = await client.post(f"/v1/cases/{spec.case_id}/transitions", json=body)
    assert r.status_code == 422, r.text
    assert {f["field"] for f in r.json()["fields"]} == fields


@pytest.mark.parametrize("case_id", ["no-such-case", "nul%00"])
async def test_an_unknown_case_is_404(client: httpx.AsyncClient, case_id: str) -> None:
    assert (await move(client, case_id, S.ACCEPTED, 1)).status_code == 404
    assert (await client.get(f"/v1/cases/{case_id}")).status_code == 404


async def test_a_stale_version_is_409_with_the_current_one(
        mediation: Mediation, client: httpx.AsyncClient) -> None:
    spec = CaseSpec()
    await mediation.seed(spec)
    assert (await move(client, spec.case_id, S.ACCEPTED, 2)).status_code == 200
    r = await move(client, spec.case_id, S.IN_MEDIATION, 2)
    assert r.status_code == 409
    assert (r.json()["error"], r.json()["current_version"]) == ("version_conflict", 3)


@pytest.mark.parametrize("attempt", range(5))
async def test_two_concurrent_steps_on_one_version_exactly_one_wins(
        mediation: Mediation, client: httpx.AsyncClient, attempt: int) -> None:
    spec = CaseSpec()
    await mediation.seed(spec)
    answers = await asyncio.gather(move(client, spec.case_id, S.ACCEPTED, 2),
                                   move(client, spec.case_id, S.WITHDRAWN, 2))
    assert sorted(a.status_code for a in answers) == [200, 409]
    case = (await client.get(f"/v1/cases/{spec.case_id}")).json()
    assert case["version"] == 3
    assert len(case["history"]) == 3


async def test_the_conditional_update_refuses_a_writer_that_read_before_the_winner(
        mediation: Mediation) -> None:
    """Both read version 2; the winner commits; the loser's UPDATE ... WHERE version = 2
    matches nothing (on PostgreSQL after waiting for the winner's row lock)."""
    spec = CaseSpec()
    await mediation.seed(spec)
    sessions = mediation.runtime.sessions
    now = datetime.now(UTC)

    def step(to: Status) -> TransitionRequest:
        return TransitionRequest(to_status=to, actor="x", expected_version=2)

    async with sessions() as first, sessions() as second:
        async with second.begin():
            late = await second.get(Case, spec.case_id)
        assert late is not None and late.version == 2
        async with first.begin():
            early = await first.get(Case, spec.case_id)
            assert early is not None
            await transition_case(first, early, step(S.ACCEPTED), now)
        with pytest.raises(StaleVersion) as lost:
            async with second.begin():
                await transition_case(second, late, step(S.WITHDRAWN), now)
    assert lost.value.current == 3


async def test_limited_keys_see_and_move_only_their_cases(
        mediation: Mediation, client: httpx.AsyncClient) -> None:
    ours = CaseSpec(tier=Tier.TOWN, lead=Department.JUDICIAL_OFFICE,
                    jurisdiction="330106001001")
    cooperating = CaseSpec(tier=Tier.TOWN, lead=Department.TRAFFIC_POLICE,
                           cooperating=[Department.JUDICIAL_OFFICE], jurisdiction="330106001002")
    elsewhere = CaseSpec(tier=Tier.TOWN, lead=Department.JUDICIAL_OFFICE,
                         jurisdiction="330106002001")
    other = CaseSpec(tier=Tier.TOWN, lead=Department.HEALTH, jurisdiction="330106001003")
    await mediation.seed(ours, cooperating, elsewhere, other)
    key = await mediation.key(departments=["judicial_office"], jurisdictions=["330106001"])

    seen = {spec.case_id: (await client.get(f"/v1/cases/{spec.case_id}", headers=key)
                           ).status_code for spec in (ours, cooperating, elsewhere, other)}
    assert seen == {ours.case_id: 200, cooperating.case_id: 200, elsewhere.case_id: 404,
                    other.case_id: 404}
    listed = await client.get("/v1/cases", headers=key, params={"limit": 200})
    ids = {c["case_id"] for c in listed.json()["items"]}
    assert {ours.case_id, cooperating.case_id} <= ids
    assert not ids & {elsewhere.case_id, other.case_id}

    assert (await move(client, ours.case_id, S.ACCEPTED, 2, headers=key)).status_code == 200
    assert (await move(client, cooperating.case_id, S.ACCEPTED, 2, headers=key)
            ).status_code == 403
    assert (await move(client, other.case_id, S.ACCEPTED, 2, headers=key)).status_code == 404
    read_only = {"Authorization": "Bearer " + (await mediation.runtime.keys.create(
        "reader", ["cases:read"]))[1]}
    assert (await move(client, other.case_id, S.ACCEPTED, 2, headers=read_only)
            ).status_code == 403


async def test_the_case_list_filters_combine_and_page(
        mediation: Mediation, client: httpx.AsyncClient, unique: str) -> None:
    now = datetime.now(UTC)
    base = datetime(2025, 6, 1, 10, tzinfo=UTC)
    late = CaseSpec(channel=Channel.POLICE, category=Category.TRAFFIC_ACCIDENT, risk=Risk.RED,
                    tier=Tier.TOWN, lead=Department.TRAFFIC_POLICE, jurisdiction="330106009001",
                    received_at=base, text=f"交通事故 {unique} 对方扬言报复",
                    accept_by=now - timedelta(hours=1))
    on_time = CaseSpec(channel=Channel.POLICE, category=Category.TRAFFIC_ACCIDENT,
                       tier=Tier.TOWN, lead=Department.TRAFFIC_POLICE,
                       cooperating=[Department.POLICE_STATION], jurisdiction="330106009002",
                       received_at=base + timedelta(hours=1), text=f"车辆刮擦 {unique}")
    grid = CaseSpec(channel=Channel.GRID, jurisdiction="330106008001",
                    received_at=base + timedelta(hours=2), text=f"邻里噪音 {unique}")
    accepted_late = CaseSpec(channel=Channel.GRID, jurisdiction="330106008002",
                             received_at=base + timedelta(hours=3), text=f"漏水 {unique}",
                             accept_by=now - timedelta(hours=1))
    await mediation.seed(late, on_time, grid, accepted_late)
    await walk(mediation.runtime.sessions, accepted_late.case_id, [S.ACCEPTED])

    async def ids(**params: Any) -> list[str]:
        r = await client.get("/v1/cases", params={"text": unique, **params})
        assert r.status_code == 200, r.text
        return [c["case_id"] for c in r.json()["items"]]

    newest_first = [accepted_late.case_id, grid.case_id, on_time.case_id, late.case_id]
    assert await ids() == newest_first
    assert await ids(channel="police") == [on_time.case_id, late.case_id]
    assert await ids(department="police_station") == [on_time.case_id]
    assert await ids(department="traffic_police", risk="red") == [late.case_id]
    assert await ids(jurisdiction="330106008") == [accepted_late.case_id, grid.case_id]
    assert await ids(overdue="true") == [late.case_id]
    assert late.case_id not in await ids(overdue="false")
    assert await ids(status="accepted") == [accepted_late.case_id]
    assert await ids(category="traffic_accident", tier="town") == [on_time.case_id,
                                                                   late.case_id]
    assert await ids(received_from="2025-06-01T11:00:00Z",
                     received_to="2025-06-01T13:00:00Z") == [grid.case_id, on_time.case_id]
    # Without an offset, a time is China Standard Time: 18:00+08:00 is 10:00Z.
    assert await ids(received_to="2025-06-01T18:00:01") == [late.case_id]
    assert await ids(text=f"{unique} 对方扬言") == [late.case_id]

    pages: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"text": unique, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/cases", params=params)).json()
        pages += [c["case_id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == newest_first
    flags = {c["case_id"]: c["overdue"] for c in (await client.get(
        "/v1/cases", params={"text": unique})).json()["items"]}
    assert flags == {late.case_id: True, on_time.case_id: False, grid.case_id: False,
                     accepted_late.case_id: False}


@pytest.mark.parametrize("params,field", [
    ({"cursor": "bm9wZQ"}, "cursor"),
    # ["0001-01-01T00:00:00+14:00", "x"]: a time before the first UTC day
    ({"cursor": "WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzE0OjAwIiwieCJd"}, "cursor"),
    ({"jurisdiction": "33a"}, "jurisdiction"),
    ({"received_from": "2025-06-02", "received_to": "2025-06-01"}, "received_to"),
    ({"overdue": "maybe"}, "overdue"),
    ({"department": "ministry"}, "department"),
    ({"text": "\x00"}, "text"),
    ({"received_from": "0001-01-01T00:00:00+14:00"}, "received_from"),
])
async def test_bad_list_parameters_are_422(client: httpx.AsyncClient, params: dict[str, str],
                                           field: str) -> None:
    r = await client.get("/v1/cases", params=params)
    assert r.status_code == 422, r.text
    assert field in {f["field"].removeprefix("query.") for f in r.json()["fields"]}
