"""Staff correct the routing (退回 / 改派 / 人工分派 / 退单) through the real router, mediation and
notify on a broker and database of their own: a returned case is routed again to another
department and both departments hear of it; a case returned twice waits in the dispatch
queue until a dispatcher assigns it, and is then worked to closure; a 12345 case goes back
to the hotline with the reason; two assignments on one version: one wins; the figures and
the router's corrections export show it all."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request, Response

from contracts.enums import Channel, Department, Status
from contracts.events import CaseReported, CaseReportedEvent
from contracts.topics import CASE_REPORTED
from kit.auth import KeyStore
from kit.bus import Producer, Record, encode
from services.mediation.main import create as create_mediation
from services.notify.domain import new_secret
from services.notify.main import create as create_notify
from services.router.main import create as create_router
from tests.infra import AUTH, Isolated, eventually, serve, service_settings
from tests.integration.test_mediation_seeding import STEP_DATA

pytestmark = pytest.mark.integration

S = Status
NOISE = "楼上邻居每天深夜噪音扰民，多次沟通无果。"
ALL_BUT_VILLAGE = [d.value for d in Department if d is not Department.VILLAGE_MEDIATION]


@dataclass
class Receivers:
    """Webhook receivers and a hotline callback at /hook/{name}: every post kept."""

    got: dict[str, list[tuple[dict[str, str], dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list))

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook/{name}")
        async def hook(name: str, request: Request) -> Response:
            self.got[name].append((dict(request.headers), orjson.loads(await request.body())))
            return Response(status_code=204)

        return app


@dataclass
class World:
    router: str
    mediation: str
    notify: str
    hooks: str
    receivers: Receivers
    keys: KeyStore
    bootstrap: str
    hotline_secret: str


@pytest.fixture(scope="module")
async def world(isolated: Isolated) -> AsyncIterator[World]:
    receivers = Receivers()
    hotline_secret = new_secret()

    def settings(service: str, **overrides: object) -> Any:
        return service_settings(service, isolated.broker.bootstrap, isolated.database_url,
                                isolated.directory, **overrides)

    router = create_router(settings("router"))
    mediation = create_mediation(settings("mediation"))
    async with serve(receivers.app()) as hooks:
        notify = create_notify(settings(
            "notify", delivery_backoff_base_seconds=0.1, delivery_backoff_max_seconds=1.0,
            hotline_callback_secret=hotline_secret))
        async with serve(router) as router_url, serve(mediation) as mediation_url, \
                serve(notify) as notify_url:
            yield World(router_url, mediation_url, notify_url, hooks, receivers,
                        mediation.state.keys, isolated.broker.bootstrap, hotline_secret)


async def key(world: World, *scopes: str, **limits: Any) -> dict[str, str]:
    _, token = await world.keys.create("test key", list(scopes), **limits)
    return {"Authorization": f"Bearer {token}"}


async def report(world: World, case_id: str, *, callback_url: str | None = None,
                 text: str = NOISE) -> None:
    event = CaseReportedEvent.wrap(CaseReported(
        case_id=case_id, channel=Channel.HOTLINE_12345, external_id=f"WO-{case_id}",
        received_at=datetime.now(UTC), text=text, callback_url=callback_url),
        source="intake", subject=case_id)
    producer = Producer(world.bootstrap, "corrections-test")
    await producer.start()
    try:
        await producer.send_all([Record(topic=CASE_REPORTED, value=encode(event), key=case_id)])
    finally:
        await producer.stop()


async def case_when(client: httpx.AsyncClient, case_id: str, status: str,
                    routing_round: int | None = None, within: float = 60) -> dict[str, Any]:
    async def fetch() -> httpx.Response:
        return await client.get(f"/v1/cases/{case_id}", headers=AUTH)

    def there(r: httpx.Response) -> bool:
        return r.status_code == 200 and r.json()["status"] == status and (
            routing_round is None or r.json()["routing_round"] == routing_round)
    return dict((await eventually(fetch, there, within)).json())


async def give_back(client: httpx.AsyncClient, case: dict[str, Any], headers: dict[str, str],
                    reason: str, **data: Any) -> httpx.Response:
    return await client.post(f"/v1/cases/{case['case_id']}/transitions", headers=headers, json={
        "to_status": "returned", "actor": "科员", "reason": reason,
        "expected_version": case["version"], "data": data})


async def subscribe(world: World, name: str, departments: list[str]) -> None:
    async with httpx.AsyncClient(base_url=world.notify, headers=AUTH, timeout=30) as api:
        r = await api.post("/v1/subscriptions", json={
            "name": name, "url": f"{world.hooks}/hook/{name}", "kinds": ["routed"],
            "departments": departments})
        assert r.status_code == 201, r.text


async def posts(world: World, name: str, until: Any, within: float = 30
                ) -> list[dict[str, Any]]:
    async def bodies() -> list[dict[str, Any]]:
        return [body for _, body in world.receivers.got[name]]
    return await eventually(bodies, until, within)


async def test_a_return_is_routed_again_to_another_department_and_both_are_told(
        world: World, unique: str) -> None:
    case_id = f"RET{unique}"
    lost, won = f"village-{unique}", f"others-{unique}"
    await subscribe(world, lost, ["village_mediation"])
    await subscribe(world, won, ALL_BUT_VILLAGE)
    village = await key(world, "cases:read", "cases:write", departments=["village_mediation"])
    await report(world, case_id)
    async with httpx.AsyncClient(base_url=world.mediation, timeout=30) as client:
        first = await case_when(client, case_id, "routed")
        assert (first["lead_department"], first["tier"]) == ("village_mediation", "village")

        missing = await give_back(client, first, village, " ")
        assert missing.status_code == 422, missing.text
        assert "reason" in {f["field"] for f in missing.json()["fields"]}

        returned = await give_back(client, first, village, "邻里噪音属司法所调处范围")
        assert returned.status_code == 200, returned.text
        returned_at = datetime.fromisoformat(returned.json()["transitions"][0]["at"])

        again = await case_when(client, case_id, "routed", routing_round=2)

    assert again["lead_department"] == "judicial_office"
    assert again["tier"] == "village"  # a return keeps the tier
    assert "village_mediation" not in again["cooperating_departments"]
    assert [h["to_status"] for h in again["history"]] == [
        "reported", "routed", "returned", "routed"]
    note = "returned by village_mediation: 邻里噪音属司法所调处范围"
    assert note in again["decision"]["rules_fired"]
    assert note in again["decision"]["explanation"]["en"]
    # The acceptance limit starts again for the new department; the overall one runs on.
    assert datetime.fromisoformat(again["accept_from"]) >= returned_at
    assert again["resolve_by"] == first["resolve_by"]
    assert again["limits_from"] == first["limits_from"]
    assert again["returns"] == 1

    withdrawn = await posts(world, lost, lambda got: any(
        b.get("notice") == "withdrawn" for b in got))
    assigned = await posts(world, won, lambda got: any(
        b.get("notice") == "assigned" for b in got))
    told = next(b for b in withdrawn if b.get("notice") == "withdrawn")
    assert told["data"]["routing_round"] == 2
    assert told["data"]["correction"]["previous_lead_department"] == "village_mediation"
    new = next(b for b in assigned if b.get("notice") == "assigned")
    assert new["data"]["decision"]["lead_department"] == "judicial_office"
    # The department that lost the case is not told it was assigned, and vice versa.
    assert not any(b.get("notice") == "assigned" for b in withdrawn)

    async with httpx.AsyncClient(base_url=world.mediation, headers=AUTH, timeout=30) as api:
        stats = (await api.get("/v1/stats", params={"group_by": "routed_department",
                                                    "received_from": first["received_at"]}))
        assert stats.status_code == 200, stats.text
        by_department = {r["group"]["routed_department"]: r for r in stats.json()["rows"]}
        assert by_department["village_mediation"]["returned"] >= 1
        assert by_department["village_mediation"]["return_rate"] > 0
        csv = await api.get("/v1/stats", params={"group_by": "lead_rule", "format": "csv"})
        assert "退回率 return_rate" in csv.text and "lead.village_tier" in csv.text

    async with httpx.AsyncClient(base_url=world.router, headers=AUTH, timeout=30) as api:
        async def export() -> httpx.Response:
            return await api.get("/v1/routing/corrections", params={"limit": 1000})
        got = await eventually(export, lambda r: any(
            i["case_id"] == case_id for i in r.json()["items"]))
        item = next(i for i in got.json()["items"] if i["case_id"] == case_id)
        csv = await api.get("/v1/routing/corrections", params={"format": "csv"})
    assert item["kind"] == "return" and item["channel"] == "hotline_12345"
    assert item["text"] == NOISE
    assert item["reason"] == "邻里噪音属司法所调处范围"
    assert item["router"]["lead_department"] == "village_mediation"
    assert item["final"]["lead_department"] == "judicial_office"
    assert set(item) == {"case_id", "text", "channel", "kind", "corrected_at", "corrected_by",
                         "reason", "router", "final"}
    assert csv.status_code == 200 and case_id in csv.text


async def test_a_case_returned_twice_is_dispatched_by_hand_accepted_and_closed(
        world: World, unique: str) -> None:
    case_id = f"DSP{unique}"
    village = await key(world, "cases:read", "cases:write", departments=["village_mediation"])
    judicial = await key(world, "cases:read", "cases:write", "cases:dispatch",
                         departments=["judicial_office"])
    dispatcher = await key(world, "cases:read", "cases:write", "cases:dispatch")
    await report(world, case_id)
    async with httpx.AsyncClient(base_url=world.mediation, timeout=30) as client:
        first = await case_when(client, case_id, "routed")
        r = await give_back(client, first, village, "不属村调委")
        assert r.status_code == 200, r.text
        second = await case_when(client, case_id, "routed", routing_round=2)
        assert second["lead_department"] == "judicial_office"
        r = await give_back(client, second, judicial, "需住建部门处理",
                            suggested_department="housing_construction")
        assert r.status_code == 200, r.text

        queued = await case_when(client, case_id, "awaiting_dispatch")
        assert queued["lead_department"] is None and queued["returns"] == 2
        assert "dispatch.queue" in queued["decision"]["rules_fired"]
        queue = await client.get("/v1/cases", headers=dispatcher,
                                 params={"status": "awaiting_dispatch"})
        assert case_id in {c["case_id"] for c in queue.json()["items"]}

        assignment = {"lead_department": "housing_construction", "tier": "town",
                      "cooperating_departments": ["judicial_office"],
                      "reason": "物业噪音，住建牵头", "expected_version": queued["version"]}
        path = f"/v1/cases/{case_id}/assignment"
        # A department's key cannot assign, even with the scope; nor one without it.
        assert (await client.post(path, headers=judicial, json=assignment)).status_code == 403
        assert (await client.post(path, headers=village, json=assignment)).status_code == 403
        unknown = await client.post(path, headers=dispatcher, json={
            **assignment, "lead_department": "ministry_of_magic"})
        assert unknown.status_code == 422
        assert any("lead_department" in f["field"] for f in unknown.json()["fields"])
        no_reason = await client.post(path, headers=dispatcher, json={
            k: v for k, v in assignment.items() if k != "reason"})
        assert no_reason.status_code == 422
        assert any("reason" in f["field"] for f in no_reason.json()["fields"])

        r = await client.post(path, headers=dispatcher, json=assignment)
        assert r.status_code == 200, r.text
        dispatched = r.json()["case"]
        assert (dispatched["status"], dispatched["lead_department"], dispatched["tier"]) == (
            "routed", "housing_construction", "town")
        assert dispatched["routing_round"] == queued["routing_round"] + 1
        assert dispatched["reassignments"] == 1

        version = dispatched["version"]
        for step in (S.ACCEPTED, S.IN_MEDIATION, S.RESOLVED, S.CLOSED):
            r = await client.post(f"/v1/cases/{case_id}/transitions", headers=AUTH, json={
                "to_status": step.value, "actor": "住建局", "expected_version": version,
                "data": STEP_DATA.get(step, {})})
            assert r.status_code == 200, r.text
            version = r.json()["case"]["version"]
        closed = (await client.get(f"/v1/cases/{case_id}", headers=AUTH)).json()
        audit = (await client.get("/v1/audit", headers=AUTH,
                                  params={"case_id": case_id, "action": "assign"})).json()
    assert [h["to_status"] for h in closed["history"]] == [
        "reported", "routed", "returned", "routed", "returned", "awaiting_dispatch", "routed",
        "accepted", "in_mediation", "resolved", "closed"]
    assert closed["lead_department"] == "housing_construction"
    assert [a["detail"]["lead_department"] for a in audit["items"]] == ["housing_construction"]
    assert audit["items"][0]["detail"]["kind"] == "dispatch"

    async with httpx.AsyncClient(base_url=world.router, headers=AUTH, timeout=30) as api:
        async def export() -> httpx.Response:
            return await api.get("/v1/routing/corrections", params={"limit": 1000})
        got = await eventually(export, lambda r: any(
            i["case_id"] == case_id for i in r.json()["items"]))
    item = next(i for i in got.json()["items"] if i["case_id"] == case_id)
    assert item["kind"] == "dispatch" and item["reason"] == "物业噪音，住建牵头"
    assert item["final"]["lead_department"] == "housing_construction"
    assert item["final"]["tier"] == "town"
    assert item["router"]["lead_department"] == "village_mediation"


async def test_two_reassignments_on_one_version_one_wins(world: World, unique: str) -> None:
    case_id = f"TWO{unique}"
    dispatcher = await key(world, "cases:read", "cases:dispatch")
    await report(world, case_id)
    async with httpx.AsyncClient(base_url=world.mediation, timeout=30) as client:
        routed = await case_when(client, case_id, "routed")

        async def reassign(department: str) -> httpx.Response:
            return await client.post(f"/v1/cases/{case_id}/assignment", headers=dispatcher,
                                     json={"lead_department": department, "tier": "town",
                                           "reason": "改派", "expected_version":
                                           routed["version"]})
        answers = await asyncio.gather(reassign("judicial_office"), reassign("civil_affairs"))
        after = (await client.get(f"/v1/cases/{case_id}", headers=AUTH)).json()
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    conflict = next(a for a in answers if a.status_code == 409).json()
    assert conflict["error"] == "version_conflict"
    winner = next(a for a in answers if a.status_code == 200).json()["case"]
    assert after["lead_department"] == winner["lead_department"]
    assert after["version"] == routed["version"] + 1
    assert [h["to_status"] for h in after["history"]][-2:] == ["routed", "routed"]


async def test_a_12345_case_returned_to_the_hotline_reaches_its_callback(
        world: World, unique: str) -> None:
    case_id = f"SRC{unique}"
    name = f"hotline-{unique}"
    await report(world, case_id, callback_url=f"{world.hooks}/hook/{name}")
    worker = await key(world, "cases:read", "cases:write")
    dispatcher = await key(world, "cases:read", "cases:write", "cases:dispatch")
    async with httpx.AsyncClient(base_url=world.mediation, timeout=30) as client:
        routed = await case_when(client, case_id, "routed")
        body = {"to_status": "returned_to_source", "actor": "分拨员",
                "reason": "属物业合同纠纷，非本中心职责", "expected_version": routed["version"]}
        path = f"/v1/cases/{case_id}/transitions"
        assert (await client.post(path, headers=worker, json=body)).status_code == 403
        no_reason = await client.post(path, headers=dispatcher, json={**body, "reason": None})
        assert no_reason.status_code == 422
        r = await client.post(path, headers=dispatcher, json=body)
        assert r.status_code == 200, r.text
    assert [s["to_status"] for s in r.json()["transitions"]] == ["returned_to_source", "closed"]
    assert r.json()["case"]["status"] == "closed"

    await posts(world, name, lambda got: len(got) >= 1)
    headers, feedback = world.receivers.got[name][0]
    assert headers["webhook-signature"].startswith("v1,")  # signed as every feedback is
    assert feedback["order_no"] == f"WO-{case_id}" and feedback["status"] == "closed"
    assert feedback["returned"] is True
    assert feedback["return_reason"] == "属物业合同纠纷，非本中心职责"
    assert "属物业合同纠纷" in feedback["result"]


async def test_a_reassigned_case_returned_by_its_new_department_is_routed_from_there(
        world: World, unique: str) -> None:
    """Every service applies a dispatcher's decision as the router's: the departments are
    told, and the router routes the next return from its round, tier and department."""
    case_id = f"RAS{unique}"
    lost, won = f"lost-{unique}", f"won-{unique}"
    await subscribe(world, lost, ["village_mediation"])
    await subscribe(world, won, ["civil_affairs"])
    dispatcher = await key(world, "cases:read", "cases:dispatch")
    civil = await key(world, "cases:read", "cases:write", departments=["civil_affairs"])
    await report(world, case_id)
    async with httpx.AsyncClient(base_url=world.mediation, timeout=30) as client:
        routed = await case_when(client, case_id, "routed")
        r = await client.post(f"/v1/cases/{case_id}/assignment", headers=dispatcher, json={
            "lead_department": "civil_affairs", "tier": "town", "reason": "涉及低保户",
            "expected_version": routed["version"]})
        assert r.status_code == 200, r.text
        reassigned = r.json()["case"]
        assert reassigned["routing_round"] == 2
        assert datetime.fromisoformat(reassigned["accept_from"]) > datetime.fromisoformat(
            routed["received_at"])
        assert reassigned["resolve_by"] == routed["resolve_by"]

        r = await give_back(client, reassigned, civil, "非民政职责")
        assert r.status_code == 200, r.text
        again = await case_when(client, case_id, "routed", routing_round=3)
    assert again["tier"] == "town"  # the dispatcher's tier, kept on return
    assert again["lead_department"] not in {"civil_affairs"}
    assert "returned by civil_affairs: 非民政职责" in again["decision"]["rules_fired"]

    withdrawn = await posts(world, lost, lambda got: any(
        b.get("notice") == "withdrawn" for b in got))
    assert next(b for b in withdrawn if b.get("notice") == "withdrawn"
                )["data"]["correction"]["kind"] == "reassign"
    told = await posts(world, won, lambda got: any(b.get("notice") == "withdrawn" for b in got))
    # Deliveries are not ordered: the assignment (round 2) and its withdrawal (round 3).
    assert sorted(b["notice"] for b in told if "notice" in b) == ["assigned", "withdrawn"]


# The rules read a debt, the learned reader a marriage (services/router/domain/readers.py):
# the readers disagree on the category, so the routing is flagged for review (待研判).
DOUBTFUL = "丈夫在外面欠了很多钱，债主找上门，我想离婚但他不同意。"


async def test_a_doubtful_routing_waits_in_the_review_queue_until_a_dispatcher_decides(
        world: World, unique: str) -> None:
    doubtful, plain = f"DBT{unique}", f"PLN{unique}"
    dispatcher = await key(world, "cases:read", "cases:dispatch")
    await report(world, doubtful, text=DOUBTFUL)
    await report(world, plain)
    async with httpx.AsyncClient(base_url=world.mediation, timeout=30) as client:
        flagged = await case_when(client, doubtful, "routed")
        unflagged = await case_when(client, plain, "routed")
        assert flagged["review_flagged"] is True
        assert flagged["decision"]["review"]["flagged"] is True
        assert flagged["decision"]["review"]["reasons"]
        assert unflagged["review_flagged"] is False
        # The decision stands meanwhile: the case is routed to a department.
        assert flagged["lead_department"]

        queue = (await client.get("/v1/cases", headers=dispatcher,
                                  params={"review": "true", "limit": 200})).json()["items"]
        assert doubtful in {c["case_id"] for c in queue}
        assert plain not in {c["case_id"] for c in queue}

        decided = await client.post(f"/v1/cases/{doubtful}/assignment", headers=dispatcher,
                                    json={"lead_department": "judicial_office", "tier": "town",
                                          "reason": "婚姻纠纷为主，债务一并调处",
                                          "expected_version": flagged["version"]})
        assert decided.status_code == 200, decided.text
        after = (await client.get(f"/v1/cases/{doubtful}", headers=AUTH)).json()
        assert after["review_flagged"] is False
        queue = (await client.get("/v1/cases", headers=dispatcher,
                                  params={"review": "true", "limit": 200})).json()["items"]
        assert doubtful not in {c["case_id"] for c in queue}


async def test_routing_quality_counts_returns_and_review_flags(world: World, unique: str
                                                              ) -> None:
    returned_id, doubtful_id = f"QRT{unique}", f"QDB{unique}"
    village = await key(world, "cases:read", "cases:write", departments=["village_mediation"])
    reader = await key(world, "routing:read")
    await report(world, returned_id)
    await report(world, doubtful_id, text=DOUBTFUL)
    async with httpx.AsyncClient(base_url=world.mediation, timeout=30) as client:
        first = await case_when(client, returned_id, "routed")
        await case_when(client, doubtful_id, "routed")
        assert (await give_back(client, first, village, "不属本村调处")).status_code == 200
        await case_when(client, returned_id, "routed", routing_round=2)
    async with httpx.AsyncClient(base_url=world.router, headers=reader, timeout=30) as api:
        async def fetch() -> dict[str, Any]:
            return dict((await api.get("/v1/routing/quality")).json())
        quality = await eventually(fetch, lambda q: q["overall"]["returned"] >= 1)
        bad = await api.get("/v1/routing/quality", params={
            "routed_from": "2026-12-07T00:00:00+08:00", "routed_to": "2026-01-01T00:00:00+08:00"})
    overall = quality["overall"]
    assert overall["routed"] >= 2 and overall["flagged"] >= 1
    assert overall["accuracy_as_seen"] < 1
    assert overall["return_rate"] == round(overall["returned"] / overall["routed"], 4)
    neighbor = next(r for r in quality["by_category"] if r["key"] == "neighbor")
    assert neighbor["returned"] >= 1
    assert any(r["key"].startswith("lead.") and r["returned"] >= 1 for r in quality["by_rule"])
    assert quality["by_month"][0]["key"] == datetime.now(UTC).strftime("%Y-%m")
    assert bad.status_code == 422
    assert bad.json()["fields"][0]["field"] == "routed_from"
