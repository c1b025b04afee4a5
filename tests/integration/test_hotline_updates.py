"""The 12345 hotline's updates about an order after posting it (POST /v1/hotline/orders/
{order_no}/updates), through the real router, mediation and notify on a broker and database
of their own: a supplement is a step in the history (masked) that departments hear of; a
chaser is counted and opens, then raises, a supervision notice; a deadline change moves the
case's limits; the hotline's follow-up is the case's rating and counts in 满意度; the same
update again changes nothing, another under the same id is 409 naming the fields; refusals
(401, 403, 404, 409, 422) name what is at fault."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.infra import AUTH, eventually
from tests.integration import test_hotline_lifecycle as lifecycle
from tests.integration.test_hotline_lifecycle import World, at, case_when, key, report

pytestmark = pytest.mark.integration
# The router, mediation and notify of the lifecycle tests, started again for this module.
world = lifecycle.world


async def hotline_key(world: World) -> dict[str, str]:
    return await key(world, "intake:write", channels=["hotline_12345"])


async def send(client: httpx.AsyncClient, order_no: str, headers: dict[str, str],
               **body: Any) -> httpx.Response:
    return await client.post(f"/v1/hotline/orders/{order_no}/updates", headers=headers,
                             json=body)


async def move(client: httpx.AsyncClient, case_id: str, version: int, *steps: tuple[str, dict[
        str, Any]]) -> int:
    for to_status, data in steps:
        r = await client.post(f"/v1/cases/{case_id}/transitions", headers=AUTH, json={
            "to_status": to_status, "actor": "王调解员", "expected_version": version,
            "data": data})
        assert r.status_code == 200, r.text
        version = int(r.json()["case"]["version"])
    return version


async def subscribe(world: World, name: str) -> None:
    async with httpx.AsyncClient(base_url=world.notify, headers=AUTH, timeout=30) as api:
        r = await api.post("/v1/subscriptions", json={
            "name": name, "url": f"{world.hotline_url}/cb/{name}",
            "kinds": ["lifecycle", "supervision"]})
        assert r.status_code == 201, r.text


async def webhooks(world: World, name: str, case_id: str, kind: str, count: int = 1
                   ) -> list[dict[str, Any]]:
    async def got() -> list[dict[str, Any]]:
        return [b for b in world.hotline.bodies(name)
                if b["data"]["case_id"] == case_id and kind in str(b)]
    return await eventually(got, lambda found: len(found) >= count, 30)


async def test_a_supplement_is_a_step_in_the_history_masked_and_departments_hear_of_it(
        world: World, unique: str) -> None:
    case_id = f"HUS{unique}"
    order_no = await report(world, case_id)
    await subscribe(world, f"dept{unique}")
    hotline = await hotline_key(world)
    async with httpx.AsyncClient(base_url=world.mediation, timeout=30) as client:
        routed = await case_when(client, case_id, "routed")
        added = await send(client, order_no, hotline, update_id=f"U1-{unique}",
                           kind="supplement", text="来电人补充：对方电话13912345678，晚上十点后最吵")
        assert added.status_code == 200, added.text
        result = added.json()
        assert result["update_id"] == f"U1-{unique}" and result["kind"] == "supplement"
        step = result["transitions"][0]
        assert step["activity"] == "hotline_supplement"
        assert step["from_status"] == step["to_status"] == "routed"
        assert step["data"]["notes"] == "来电人补充：对方电话139****5678，晚上十点后最吵"
        assert result["case"]["version"] == routed["version"] + 1
        view = (await client.get(f"/v1/cases/{case_id}", headers=AUTH)).json()
    assert [h.get("activity") for h in view["history"]][-1] == "hotline_supplement"
    assert "13912345678" not in str(view)
    hooks = await webhooks(world, f"dept{unique}", case_id, "hotline_supplement")
    assert hooks[0]["data"]["activity"] == "hotline_supplement"
    assert hooks[0]["data"]["lead_department"] == routed["lead_department"]
    assert "13912345678" not in str(hooks)


async def test_a_chaser_opens_a_notice_at_urge_then_raises_it_up_to_the_top_and_counts(
        world: World, unique: str) -> None:
    case_id = f"HUC{unique}"
    order_no = await report(world, case_id)
    await subscribe(world, f"lead{unique}")
    hotline = await hotline_key(world)
    async with httpx.AsyncClient(base_url=world.mediation, timeout=30) as client:
        await case_when(client, case_id, "routed")
        results = []
        for n in range(1, 5):
            r = await send(client, order_no, hotline, update_id=f"C{n}-{unique}", kind="chaser",
                           **({"text": "群众来电催问进度"} if n == 1 else {}))
            assert r.status_code == 200, r.text
            results.append(r.json())
        notices = (await client.get(f"/v1/cases/{case_id}/supervision-notices",
                                    headers=AUTH)).json()["items"]
        view = (await client.get(f"/v1/cases/{case_id}", headers=AUTH)).json()
    assert [(r["notice"]["action"], r["notice"]["level"]) for r in results] == [
        ("issued", "urge"), ("raised", "supervise"), ("raised", "listed"), ("missed", "listed")]
    assert len({r["notice"]["notice_id"] for r in results}) == 1
    [notice] = notices
    assert notice["level"] == "listed" and notice["status"] == "open"
    assert notice["raises"] == 2 and "群众来电催问进度" in notice["asked"]
    # The default answer deadline: FQ_HOTLINE_CHASER_ANSWER_HOURS, 24 h.
    first = results[0]
    assert at(first["notice"]["answer_by"]) - at(first["transitions"][0]["at"]) == \
        timedelta(hours=24)
    assert [r["case"]["chasers"] for r in results] == [1, 2, 3, 4]
    assert view["chasers"] == 4
    assert [h["data"]["chasers"] for h in view["history"]
            if h.get("activity") == "hotline_chaser"] == [1, 2, 3, 4]
    told = await webhooks(world, f"lead{unique}", case_id, "'action'", count=4)
    actions = [b["data"]["notice"]["action"] for b in told if b["data"].get("notice")]
    assert actions[:3] == ["issued", "raised", "raised"] and len(actions) == 4


async def test_a_deadline_change_moves_the_limits_later_or_earlier_and_is_refused_with_the_field(
        world: World, unique: str) -> None:
    case_id = f"HUD{unique}"
    order_no = await report(world, case_id, deadline=timedelta(days=3))
    hotline = await hotline_key(world)
    async with httpx.AsyncClient(base_url=world.mediation, timeout=30) as client:
        routed = await case_when(client, case_id, "routed")
        received = at(routed["received_at"])
        later = received + timedelta(days=10)
        moved = await send(client, order_no, hotline, update_id=f"D1-{unique}",
                           kind="deadline_change", deadline=later.isoformat(),
                           text="来电人同意延长办理时间")
        assert moved.status_code == 200, moved.text
        case = moved.json()["case"]
        assert at(case["resolve_by"]) == later and case["resolve_by_source"] == "hotline"
        step = moved.json()["transitions"][0]
        assert step["activity"] == "hotline_deadline_change"
        assert at(step["data"]["resolve_by"]) == later
        # very_urgent: 1 hour and 2 days from the order's receipt (sla.hotline_urgency).
        urgent = await send(client, order_no, hotline, update_id=f"D2-{unique}",
                            kind="deadline_change", urgency="very_urgent")
        assert urgent.status_code == 200, urgent.text
        case = urgent.json()["case"]
        assert at(case["resolve_by"]) == received + timedelta(days=2)
        assert at(case["accept_by"]) == received + timedelta(hours=1)
        assert case["accept_by_source"] == "hotline"

        past = await send(client, order_no, hotline, update_id=f"D3-{unique}",
                          kind="deadline_change",
                          deadline=(received + timedelta(milliseconds=1)).isoformat())
        assert past.status_code == 422 and [f["field"] for f in past.json()["fields"]] == [
            "deadline"]
        before = await send(client, order_no, hotline, update_id=f"D4-{unique}",
                            kind="deadline_change",
                            deadline=(received - timedelta(days=1)).isoformat())
        assert before.status_code == 422
        assert [f["field"] for f in before.json()["fields"]] == ["deadline"]
        nothing = await send(client, order_no, hotline, update_id=f"D5-{unique}",
                             kind="deadline_change")
        assert nothing.status_code == 422 and "urgency" in str(nothing.json()["fields"])
        naive = await send(client, order_no, hotline, update_id=f"D6-{unique}",
                           kind="deadline_change", deadline="2030-01-01T00:00:00")
        assert naive.status_code == 422 and "deadline" in str(naive.json()["fields"])
        view = (await client.get(f"/v1/cases/{case_id}", headers=AUTH)).json()
    assert [h.get("activity") for h in view["history"]].count("hotline_deadline_change") == 2
    assert at(view["resolve_by"]) == received + timedelta(days=2)


async def test_the_hotlines_follow_up_is_the_cases_rating_and_counts_in_satisfaction(
        world: World, unique: str) -> None:
    case_id = f"HUF{unique}"
    order_no = await report(world, case_id)
    hotline = await hotline_key(world)
    follow_up = {"kind": "follow_up", "satisfaction": 4, "text": "回访群众，表示基本满意"}
    async with httpx.AsyncClient(base_url=world.mediation, timeout=30) as client:
        routed = await case_when(client, case_id, "routed")
        early = await send(client, order_no, hotline, update_id=f"F0-{unique}", **follow_up)
        assert early.status_code == 409 and early.json()["error"] == "illegal_transition"
        assert early.json()["current_status"] == "routed"
        await move(client, case_id, routed["version"], ("accepted", {}), ("in_mediation", {}),
                   ("resolved", {"agreement": "双方达成和解", "agreement_amount": 0}),
                   ("closed", {}))
        rated = await send(client, order_no, hotline, update_id=f"F1-{unique}", **follow_up)
        assert rated.status_code == 200, rated.text
        steps = rated.json()["transitions"]
        assert [s["to_status"] for s in steps] == ["visited", "rated"]
        assert steps[0]["data"]["visit_notes"] == "回访群众，表示基本满意"
        assert rated.json()["case"]["satisfaction"] == 4
        again = await send(client, order_no, hotline, update_id=f"F2-{unique}",
                           **{**follow_up, "satisfaction": 1})
        assert again.status_code == 409 and again.json()["error"] == "follow_up_recorded"
        assert [f["field"] for f in again.json()["fields"]] == ["satisfaction"]
        assert again.json()["fields"][0]["reason_zh"]
        received = at(routed["received_at"])
        stats = await client.get("/v1/stats", headers=AUTH, params={
            "received_from": received.isoformat(),
            "received_to": (received + timedelta(milliseconds=1)).isoformat()})
    total = stats.json()["total"]
    assert total["rated"] == 1 and total["satisfaction_mean"] == 4.0
    assert total["satisfaction_share_4_5"] == 1.0


async def test_an_update_sent_again_changes_nothing_and_another_under_its_id_is_409(
        world: World, unique: str) -> None:
    case_id = f"HUI{unique}"
    order_no = await report(world, case_id)
    hotline = await hotline_key(world)
    update = {"update_id": f"I1-{unique}", "kind": "supplement", "text": "补充：门牌号为3栋"}
    async with httpx.AsyncClient(base_url=world.mediation, timeout=30) as client:
        await case_when(client, case_id, "routed")
        first = await send(client, order_no, hotline, **update)
        again = await send(client, order_no, hotline, **update)
        assert first.status_code == again.status_code == 200, again.text
        assert again.json() == first.json()
        other = await send(client, order_no, hotline, **{**update, "text": "补充：门牌号为5栋"})
        assert other.status_code == 409 and other.json()["error"] == "update_conflict"
        assert [f["field"] for f in other.json()["fields"]] == ["text"]
        assert other.json()["fields"][0]["reason_zh"]
        kind = await send(client, order_no, hotline, update_id=update["update_id"],
                          kind="chaser")
        assert kind.status_code == 409
        assert [f["field"] for f in kind.json()["fields"]] == ["kind", "text"]
        # The same id on another order is another update.
        other_case = f"HUJ{unique}"
        other_order = await report(world, other_case)
        await case_when(client, other_case, "routed")
        assert (await send(client, other_order, hotline, **update)).status_code == 200
        view = (await client.get(f"/v1/cases/{case_id}", headers=AUTH)).json()
        audit = (await client.get("/v1/audit", headers=AUTH, params={
            "case_id": case_id, "action": "transition"})).json()["items"]
    assert [h.get("activity") for h in view["history"]].count("hotline_supplement") == 1
    assert view["version"] == first.json()["case"]["version"]
    assert {a["detail"].get("update_id") for a in audit} == {f"I1-{unique}"}


async def test_updates_are_refused_with_reasons(world: World, unique: str) -> None:
    case_id = f"HUR{unique}"
    order_no = await report(world, case_id)
    hotline = await hotline_key(world)
    grid = await key(world, "intake:write", channels=["grid"])
    lead = await key(world, "cases:read", "cases:write", departments=["village_mediation"])
    body = {"update_id": f"R1-{unique}", "kind": "supplement", "text": "补充"}
    async with httpx.AsyncClient(base_url=world.mediation, timeout=30) as client:
        await case_when(client, case_id, "routed")
        path = f"/v1/hotline/orders/{order_no}/updates"
        assert (await client.post(path, json=body)).status_code == 401
        assert (await client.post(path, headers=lead, json=body)).status_code == 403
        assert (await client.post(path, headers=grid, json=body)).status_code == 403
        assert (await send(client, f"NOPE{unique}", hotline, **body)).status_code == 404

        async def fields(**wrong: Any) -> list[str]:
            r = await send(client, order_no, hotline, **{**body, **wrong})
            assert r.status_code == 422, r.text
            return [f["field"] for f in r.json()["fields"]]

        assert await fields(text=None) == ["text"]
        assert await fields(text="   ") == ["text"]
        assert await fields(satisfaction=5) == ["satisfaction"]
        assert await fields(kind="praise") == ["kind"]
        assert await fields(colour="red") == ["colour"]
        assert await fields(update_id="") == ["update_id"]
        assert await fields(kind="follow_up", satisfaction=6) == ["satisfaction"]
        assert await fields(kind="follow_up") == ["satisfaction"]
        assert await fields(kind="chaser", deadline="2030-01-01T00:00:00+08:00") == ["deadline"]
        view = (await client.get(f"/v1/cases/{case_id}", headers=AUTH)).json()
    assert [h.get("activity") for h in view["history"]].count("hotline_supplement") == 0


async def test_the_same_update_twice_at_once_is_taken_once(world: World, unique: str) -> None:
    case_id = f"HUT{unique}"
    order_no = await report(world, case_id)
    hotline = await hotline_key(world)
    update = {"update_id": f"T1-{unique}", "kind": "chaser", "text": "催问"}
    async with httpx.AsyncClient(base_url=world.mediation, timeout=30) as client:
        await case_when(client, case_id, "routed")
        answers = await asyncio.gather(*(send(client, order_no, hotline, **update)
                                         for _ in range(4)))
        assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
        assert len({a.text for a in answers}) == 1
        view = (await client.get(f"/v1/cases/{case_id}", headers=AUTH)).json()
    assert view["chasers"] == 1
    assert [h.get("activity") for h in view["history"]].count("hotline_chaser") == 1


async def test_the_supervision_scan_follows_the_hotlines_new_deadline(
        world: World, unique: str) -> None:
    case_id = f"HUO{unique}"
    order_no = await report(world, case_id)
    hotline = await hotline_key(world)
    async with httpx.AsyncClient(base_url=world.mediation, timeout=30) as client:
        routed = await case_when(client, case_id, "routed")
        # Seconds away (in the future even on a slow machine): the scan finds it due soon.
        soon = max(at(routed["received_at"]) + timedelta(seconds=6),
                   datetime.now(UTC) + timedelta(seconds=4))
        moved = await send(client, order_no, hotline, update_id=f"O1-{unique}",
                           kind="deadline_change", deadline=soon.isoformat())
        assert moved.status_code == 200, moved.text

        async def fetch() -> dict[str, Any]:
            return dict((await client.get(f"/v1/cases/{case_id}", headers=AUTH)).json())
        view = await eventually(fetch, lambda v: any(
            s["level"] == "level_1" and s["sla_kind"] == "resolution"
            for s in v["supervision"]), 40)
    level_1 = next(s for s in view["supervision"] if s["level"] == "level_1"
                   and s["sla_kind"] == "resolution")
    assert at(level_1["deadline"]) == soon
    assert view["overdue"] is True and view["resolve_by_source"] == "hotline"
