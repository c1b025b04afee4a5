"""A 12345 work order between acceptance and result, through the real router, mediation and
notify on a broker and database of their own: the order's deadline binds the case's limit
(and the case says so); progress notes, extension requests and the hotline's answer, with
every refusal (422 naming the field, 403, 404, 409); a hotline that answers a callback with
4xx has its reason in the delivery log."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request, Response

from contracts.enums import Channel, Urgency
from contracts.events import CaseReported, CaseReportedEvent
from contracts.topics import CASE_REPORTED
from kit.auth import KeyStore
from kit.bus import Producer, Record, encode
from services.mediation.main import create as create_mediation
from services.notify.main import create as create_notify
from services.router.main import create as create_router
from tests.infra import AUTH, Isolated, eventually, serve, service_settings

pytestmark = pytest.mark.integration

NOISE = "楼上邻居每天深夜噪音扰民，多次沟通无果。"  # village tier: 7 days by the policy


@dataclass
class Hotline:
    """The hotline's callback receiver at /cb/{name}: keeps every post; a name starting with
    `refuse` answers 400 with a body saying why (and a phone number, to be masked)."""

    got: dict[str, list[tuple[dict[str, str], bytes]]] = field(
        default_factory=lambda: defaultdict(list))

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/cb/{name}")
        async def callback(name: str, request: Request) -> Response:
            self.got[name].append((dict(request.headers), await request.body()))
            if name.startswith("refuse"):
                return Response(b'{"code": "E1032",\n "msg": "\xe5\xb7\xa5\xe5\x8d\x95\xe5\xb7'
                                b'\xb2\xe5\xbd\x92\xe6\xa1\xa3 order archived; call '
                                b'13912345678"}' + b" " * 10_000 + b"tail",
                                status_code=400, media_type="application/json")
            return Response(status_code=204)

        return app

    def bodies(self, name: str) -> list[dict[str, Any]]:
        return [orjson.loads(body) for _, body in self.got[name]]


@dataclass
class World:
    mediation: str
    notify: str
    hotline_url: str
    hotline: Hotline
    keys: KeyStore
    bootstrap: str


@pytest.fixture(scope="module")
async def world(isolated: Isolated) -> AsyncIterator[World]:
    hotline = Hotline()

    def settings(service: str, **overrides: object) -> Any:
        return service_settings(service, isolated.broker.bootstrap, isolated.database_url,
                                isolated.directory, **overrides)

    router = create_router(settings("router"))
    mediation = create_mediation(settings("mediation"))
    notify = create_notify(settings("notify", delivery_backoff_base_seconds=0.1,
                                    delivery_backoff_max_seconds=0.5,
                                    delivery_max_attempts=2))
    async with serve(hotline.app()) as hotline_url, serve(router), \
            serve(mediation) as mediation_url, serve(notify) as notify_url:
        yield World(mediation_url, notify_url, hotline_url, hotline, mediation.state.keys,
                    isolated.broker.bootstrap)


async def key(world: World, *scopes: str, **limits: Any) -> dict[str, str]:
    _, token = await world.keys.create("test key", list(scopes), **limits)
    return {"Authorization": f"Bearer {token}"}


async def report(world: World, case_id: str, *, channel: Channel = Channel.HOTLINE_12345,
                 deadline: timedelta | None = None, urgency: Urgency | None = None,
                 callback: str | None = None) -> str:
    """Publish a report as intake does; returns its order number."""
    received = datetime.now(UTC)
    order_no = f"GD-{case_id}"
    event = CaseReportedEvent.wrap(CaseReported(
        case_id=case_id, channel=channel, external_id=order_no, received_at=received,
        text=NOISE, urgency=urgency, deadline=received + deadline if deadline else None,
        callback_url=f"{world.hotline_url}/cb/{callback}" if callback else None),
        source="intake", subject=case_id)
    producer = Producer(world.bootstrap, "hotline-lifecycle-test")
    await producer.start()
    try:
        await producer.send_all([Record(topic=CASE_REPORTED, value=encode(event), key=case_id)])
    finally:
        await producer.stop()
    return order_no


async def case_when(client: httpx.AsyncClient, case_id: str, status: str,
                    within: float = 60) -> dict[str, Any]:
    async def fetch() -> httpx.Response:
        return await client.get(f"/v1/cases/{case_id}", headers=AUTH)
    return dict((await eventually(fetch, lambda r: r.status_code == 200
                                  and r.json()["status"] == status, within)).json())


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_the_order_deadline_binds_the_limit_when_earlier_and_the_case_says_whose(
        world: World, unique: str) -> None:
    early, late = f"HLE{unique}", f"HLL{unique}"
    await report(world, early, deadline=timedelta(days=3))
    await report(world, late, deadline=timedelta(days=60), urgency=Urgency.VERY_URGENT)
    async with httpx.AsyncClient(base_url=world.mediation, timeout=30) as client:
        three = await case_when(client, early, "routed")
        urgent = await case_when(client, late, "routed")
    assert at(three["resolve_by"]) - at(three["received_at"]) == timedelta(days=3)
    assert three["resolve_by_source"] == "hotline"
    assert three["accept_by_source"] == "policy"
    assert "sla.resolve.hotline_deadline" in three["decision"]["rules_fired"]
    assert three["decision"]["sla"]["resolve_by_source"] == "hotline"
    # 60 days is later than the policy's; very urgent asks for 1 hour and 2 days: earlier.
    assert urgent["resolve_by_source"] == "hotline"
    assert at(urgent["resolve_by"]) - at(urgent["received_at"]) == timedelta(days=2)
    assert urgent["accept_by_source"] == "hotline"
    assert at(urgent["accept_by"]) - at(urgent["received_at"]) == timedelta(hours=1)


async def test_progress_notes_are_refused_with_reasons(world: World, unique: str) -> None:
    case_id = f"HLN{unique}"
    await report(world, case_id)
    lead = await key(world, "cases:read", "cases:write", departments=["village_mediation"])
    # The village case's cooperating department sees it but does not act; another does not
    # even see it.
    cooperating = await key(world, "cases:read", "cases:write", departments=["judicial_office"])
    other = await key(world, "cases:read", "cases:write", departments=["education"])
    reader = await key(world, "cases:read")
    async with httpx.AsyncClient(base_url=world.mediation, timeout=30) as client:
        routed = await case_when(client, case_id, "routed")
        path = f"/v1/cases/{case_id}/progress-notes"
        empty = await client.post(path, headers=lead, json={"note": ""})
        assert empty.status_code == 422 and "note" in str(empty.json()["fields"])
        extra = await client.post(path, headers=lead, json={"note": "x", "colour": "red"})
        assert extra.status_code == 422 and "colour" in str(extra.json()["fields"])
        assert (await client.post(path, headers=reader, json={"note": "x"})).status_code == 403
        assert (await client.post(path, headers=cooperating, json={"note": "x"})
                ).status_code == 403
        assert (await client.post(path, headers=other, json={"note": "x"})).status_code == 404
        missing = await client.post(f"/v1/cases/NOPE{unique}/progress-notes", headers=AUTH,
                                    json={"note": "x"})
        assert missing.status_code == 404
        stale = await client.post(path, headers=lead, json={
            "note": "x", "expected_version": routed["version"] + 5})
        assert stale.status_code == 409 and stale.json()["error"] == "version_conflict"
        assert stale.json()["current_version"] == routed["version"]

        noted = await client.post(path, headers=lead, json={
            "note": "已联系双方，电话13812345678", "actor": "李调解员",
            "expected_version": routed["version"]})
        assert noted.status_code == 200, noted.text
        step = noted.json()["transitions"][0]
        assert step["activity"] == "progress_note"
        assert step["from_status"] == step["to_status"] == "routed"
        assert step["data"]["notes"] == "已联系双方，电话138****5678"  # masked
        assert noted.json()["case"]["version"] == routed["version"] + 1

        withdrawn = await client.post(f"/v1/cases/{case_id}/transitions", headers=AUTH, json={
            "to_status": "withdrawn", "actor": "x", "expected_version": routed["version"] + 1})
        assert withdrawn.status_code == 200, withdrawn.text
        late = await client.post(path, headers=lead, json={"note": "x"})
        assert late.status_code == 409 and late.json()["error"] == "illegal_transition"
        assert late.json()["current_status"] == "withdrawn"
        view = await case_when(client, case_id, "withdrawn")
    assert [h.get("activity") for h in view["history"]] == [
        None, None, "progress_note", None]


async def test_extension_requests_and_answers_are_refused_with_reasons(
        world: World, unique: str) -> None:
    case_id, grid_case = f"HLX{unique}", f"HLG{unique}"
    order_no = await report(world, case_id, deadline=timedelta(days=3))
    await report(world, grid_case, channel=Channel.GRID)
    lead = await key(world, "cases:read", "cases:write", departments=["village_mediation"])
    cooperating = await key(world, "cases:read", "cases:write", departments=["judicial_office"])
    other = await key(world, "cases:read", "cases:write", departments=["education"])
    hotline = await key(world, "intake:write", channels=["hotline_12345"])
    grid = await key(world, "intake:write", channels=["grid"])
    async with httpx.AsyncClient(base_url=world.mediation, timeout=30) as client:
        routed = await case_when(client, case_id, "routed")
        await case_when(client, grid_case, "routed")
        resolve_by = at(routed["resolve_by"])
        path = f"/v1/cases/{case_id}/extension-requests"
        ask = {"requested_resolve_by": (resolve_by + timedelta(days=4)).isoformat(),
               "reason": "需等待房屋鉴定结果"}

        earlier = await client.post(path, headers=lead, json={
            **ask, "requested_resolve_by": (resolve_by - timedelta(hours=1)).isoformat()})
        assert earlier.status_code == 422
        assert [f["field"] for f in earlier.json()["fields"]] == ["requested_resolve_by"]
        naive = await client.post(path, headers=lead, json={
            **ask, "requested_resolve_by": "2027-01-01T00:00:00"})
        assert naive.status_code == 422 and "requested_resolve_by" in str(naive.json())
        no_reason = await client.post(path, headers=lead, json={**ask, "reason": ""})
        assert no_reason.status_code == 422 and "reason" in str(no_reason.json()["fields"])
        assert (await client.post(path, headers=other, json=ask)).status_code == 404
        assert (await client.post(path, headers=cooperating, json=ask)).status_code == 403
        assert (await client.post(path, headers=hotline, json=ask)).status_code == 403
        assert (await client.post(f"/v1/cases/NOPE{unique}/extension-requests",
                                  headers=AUTH, json=ask)).status_code == 404
        not_hotline = await client.post(f"/v1/cases/{grid_case}/extension-requests",
                                        headers=AUTH, json=ask)
        assert not_hotline.status_code == 409
        assert not_hotline.json()["error"] == "not_a_hotline_order"
        assert [f["field"] for f in not_hotline.json()["fields"]] == ["channel"]

        asked = await client.post(path, headers=lead, json=ask)
        assert asked.status_code == 200, asked.text
        extension_id = asked.json()["transitions"][0]["data"]["extension_id"]
        assert asked.json()["case"]["extension_status"] == "pending"
        again = await client.post(path, headers=lead, json=ask)
        assert again.status_code == 409 and again.json()["error"] == "extension_pending"
        assert again.json()["extension_id"] == extension_id
        assert [f["field"] for f in again.json()["fields"]] == ["extension_id"]

        decide = f"/v1/hotline/orders/{order_no}/extension-decision"
        approve = {"extension_id": extension_id, "decision": "approved"}
        assert (await client.post(decide, json=approve)).status_code == 401
        assert (await client.post(decide, headers=lead, json=approve)).status_code == 403
        assert (await client.post(decide, headers=grid, json=approve)).status_code == 403
        unknown = await client.post(f"/v1/hotline/orders/NOPE{unique}/extension-decision",
                                    headers=hotline, json=approve)
        assert unknown.status_code == 404
        wrong = await client.post(decide, headers=hotline, json={**approve,
                                                                 "extension_id": "ext_x"})
        assert wrong.status_code == 422
        assert [f["field"] for f in wrong.json()["fields"]] == ["extension_id"]
        maybe = await client.post(decide, headers=hotline, json={**approve,
                                                                 "decision": "maybe"})
        assert maybe.status_code == 422 and "decision" in str(maybe.json()["fields"])

        approved = await client.post(decide, headers=hotline, json=approve)
        assert approved.status_code == 200, approved.text
        case = approved.json()["case"]
        assert at(case["resolve_by"]) == resolve_by + timedelta(days=4)
        assert case["resolve_by_source"] == "extension"
        assert case["extension_status"] == "approved"
        assert approved.json()["transitions"][0]["activity"] == "extension_approved"

        repeat = await client.post(decide, headers=hotline, json=approve)
        assert repeat.status_code == 200 and repeat.json()["transitions"] == []
        assert repeat.json()["case"]["version"] == case["version"]
        changed = await client.post(decide, headers=hotline, json={**approve,
                                                                   "decision": "denied"})
        assert changed.status_code == 409 and changed.json()["error"] == "extension_answered"
        assert [f["field"] for f in changed.json()["fields"]] == ["decision"]
        assert changed.json()["decision"] == "approved"


async def test_a_callback_refused_with_4xx_shows_the_hotlines_reason_in_the_log(
        world: World, unique: str) -> None:
    case_id = f"HLR{unique}"
    await report(world, case_id, callback=f"refuse-{unique}")
    async with httpx.AsyncClient(base_url=world.mediation, timeout=30) as client:
        routed = await case_when(client, case_id, "routed")
        r = await client.post(f"/v1/cases/{case_id}/transitions", headers=AUTH, json={
            "to_status": "accepted", "actor": "x", "expected_version": routed["version"]})
        assert r.status_code == 200, r.text
    async with httpx.AsyncClient(base_url=world.notify, headers=AUTH, timeout=30) as api:
        async def dead() -> httpx.Response:
            return await api.get("/v1/deliveries", params={"case_id": case_id,
                                                           "target": "hotline_feedback"})
        page = await eventually(dead, lambda r: any(
            d["status"] == "dead" for d in r.json()["items"]), 30)
        delivery = next(d for d in page.json()["items"] if d["status"] == "dead")
        detail = (await api.get(f"/v1/deliveries/{delivery['id']}")).json()
    assert detail["kind"] == "lifecycle.accepted"
    assert detail["last_status_code"] == 400
    error = detail["attempt_log"][-1]["error"]
    assert error.startswith('HTTP 400: {"code": "E1032", "msg": "工单已归档 order archived')
    assert "139****5678" in error and "13912345678" not in error
    assert "\n" not in error and "tail" not in error and len(error) <= 320
