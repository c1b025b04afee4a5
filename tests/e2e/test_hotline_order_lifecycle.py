"""End to end, as a 12345 platform lives it: the five services as separate processes on the
real broker and database, and the hotline's callback receiver on loopback. A work order
with a 3-day deadline gets a 3-day limit; 签收, a progress note, an extension request and
the hotline's approval (through the API, with the hotline's answer moving the limit), and
the result (办结) each reach the callback, signed, in the order they happened — though the
receiver refuses the first attempt of every callback, so each one is retried. Then the
hotline's updates after an order: a supplement in the case's history, a chaser opening a
supervision notice that reaches a leader's webhook, a deadline change moving the limit,
and, after closure, the hotline's follow-up in the figures' satisfaction. And an
integration that registered its callback endpoint once (a key made with `fengqiao keys
create --profile hotline`) gets the 签收 of an order sent without callback_url there,
signed with the endpoint's own secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request, Response

from kit.settings import SERVICE_PORTS
from services.notify.domain import verify
from tests.infra import (
    AUTH,
    FAST_ENV,
    ROOT,
    TEST_HOTLINE_CALLBACK_SECRET,
    Broker,
    eventually,
    free_port,
    serve,
    service_processes,
)

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]
CHINA = timezone(timedelta(hours=8))
VAR = "e2e-hotline"


@pytest.fixture(scope="module")
def services(broker: Broker, database_url: str, run_dir: Path) -> Iterator[dict[str, str]]:
    ports = {name: free_port() for name in SERVICE_PORTS}
    with service_processes(ports, bootstrap=broker.bootstrap, database_url=database_url,
                           var=run_dir / VAR,
                           env={"FQ_DELIVERY_BACKOFF_BASE_SECONDS": "0.2",
                                "FQ_DELIVERY_BACKOFF_MAX_SECONDS": "1"}) as started:
        urls = {name: s.url for name, s in started.items()}
        _wait_until_consuming(urls)
        yield urls


def _wait_until_consuming(urls: dict[str, str], within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    waiting = {name for name in urls if name != "workbench"}
    while waiting and time.monotonic() < deadline:
        for name in sorted(waiting):
            metrics = httpx.get(urls[name] + "/metrics", timeout=5).text
            if f'fq_consumer_lag_messages{{group="{name}"' in metrics:
                waiting.discard(name)
        time.sleep(0.2)
    assert not waiting, f"consumer groups without partitions after {within}s: {waiting}"


class HotlinePlatform:
    """The hotline's callback endpoint: refuses the first attempt of each callback (500),
    and the first callback it sees four times (its retries then last seconds, long enough
    for the later steps to overtake it if order were not kept); keeps what it accepted, in
    the order it accepted it."""

    def __init__(self) -> None:
        self.accepted: list[tuple[dict[str, str], bytes]] = []
        self.refused: Counter[str] = Counter()
        self.app = FastAPI()

        @self.app.post("/12345/callback")
        async def callback(request: Request) -> Response:
            message_id = request.headers.get("webhook-id", "")
            first = not self.refused or next(iter(self.refused)) == message_id
            if self.refused[message_id] < (4 if first else 1):
                self.refused[message_id] += 1
                return Response(status_code=500)
            self.accepted.append((dict(request.headers), await request.body()))
            return Response(status_code=200)

    def steps(self, order_no: str) -> list[dict[str, Any]]:
        bodies = [orjson.loads(body) for _, body in self.accepted]
        return [b for b in bodies if b["order_no"] == order_no]


@pytest.fixture
async def hotline() -> AsyncIterator[tuple[HotlinePlatform, str]]:
    platform = HotlinePlatform()
    async with serve(platform.app) as url:
        yield platform, url + "/12345/callback"


async def post_order(client: httpx.AsyncClient, services: dict[str, str], order_no: str,
                     received: datetime, callback_url: str) -> dict[str, Any]:
    """Post a 12345 order with a 3-day deadline to intake; the case once routed."""
    posted = await client.post(services["intake"] + "/v1/intake/hotline_12345", json={
        "order_no": order_no, "content": "楼上住户装修噪音持续一个月，多次协商无果。",
        "received_at": received.isoformat(), "deadline": (
            received + timedelta(days=3)).isoformat(),
        "caller_phone": "13800138000", "callback_url": callback_url})
    assert posted.status_code == 202, posted.text
    mediation = f"{services['mediation']}/v1/cases/{posted.json()['case_id']}"

    async def fetch_case() -> httpx.Response:
        return await client.get(mediation)
    return dict((await eventually(fetch_case, lambda r: r.status_code == 200
                                  and r.json()["status"] == "routed", 60)).json())


async def test_a_work_order_lives_its_lifecycle_on_the_hotlines_callback(
        services: dict[str, str], hotline: tuple[HotlinePlatform, str], unique: str) -> None:
    platform, callback_url = hotline
    order_no = f"GD-E2E-{unique}"
    received = datetime.now(CHINA).replace(microsecond=0)
    async with httpx.AsyncClient(headers=AUTH, timeout=10) as client:
        case = await post_order(client, services, order_no, received, callback_url)
        case_id = case["case_id"]
        mediation = f"{services['mediation']}/v1/cases/{case_id}"
        # The order's 3 days bind: the policy would give 7 days or more.
        limit = datetime.fromisoformat(case["resolve_by"])
        assert limit - received == timedelta(days=3)
        assert case["resolve_by_source"] == "hotline"
        assert case["decision"]["sla"]["resolve_by_source"] == "hotline"

        async def step(path: str, body: dict[str, Any]) -> dict[str, Any]:
            r = await client.post(mediation + path, json=body)
            assert r.status_code == 200, r.text
            return dict(r.json())

        async def move(to_status: str, version: int, **data: Any) -> int:
            result = await step("/transitions", {"to_status": to_status, "actor": "王调解员",
                                                 "expected_version": version, "data": data})
            return int(result["case"]["version"])

        version = await move("accepted", case["version"])
        noted = await step("/progress-notes", {"note": "已约双方下周三到村调委会面谈",
                                               "actor": "王调解员"})
        asked = await step("/extension-requests", {
            "requested_resolve_by": (limit + timedelta(days=5)).isoformat(),
            "reason": "需等待房屋漏水鉴定结果", "actor": "王调解员"})
        extension_id = asked["transitions"][0]["data"]["extension_id"]
        answer = await client.post(
            f"{services['mediation']}/v1/hotline/orders/{order_no}/extension-decision",
            json={"extension_id": extension_id, "decision": "approved", "reason": "同意延期"})
        assert answer.status_code == 200, answer.text
        moved = answer.json()["case"]
        assert datetime.fromisoformat(moved["resolve_by"]) == limit + timedelta(days=5)
        assert moved["resolve_by_source"] == "extension"
        version = await move("in_mediation", int(moved["version"]))
        version = await move("resolved", version, agreement="楼上住户暂停夜间施工",
                             agreement_amount=0)
        await move("closed", version)
        assert noted["case"]["version"] < asked["case"]["version"]

    expected = ["signed_for", "progress", "extension_requested", "extension_approved",
                "closed"]
    await eventually(lambda: _now(platform.steps(order_no)),
                     lambda got: len(got) >= len(expected), 90)
    got = platform.steps(order_no)
    assert [b["step"] for b in got] == expected
    sequences = [b["sequence"] for b in got]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    signed_for, progress, requested, approved, closed = got
    assert signed_for["status"] == "accepted" and signed_for["case_id"] == case_id
    assert signed_for["handling_department"] == case["lead_department"]
    assert progress["note"] == "已约双方下周三到村调委会面谈"
    assert requested["extension"]["extension_id"] == extension_id
    assert requested["extension"]["reason"] == "需等待房屋漏水鉴定结果"
    assert requested["extension"]["decision"] is None
    assert datetime.fromisoformat(requested["extension"]["requested_resolve_by"]) == \
        limit + timedelta(days=5)
    assert approved["extension"]["decision"] == "approved"
    assert datetime.fromisoformat(approved["resolve_by"]) == limit + timedelta(days=5)
    assert closed["status"] == "closed" and "楼上住户暂停夜间施工" in closed["result"]
    for headers, raw in platform.accepted:
        if orjson.loads(raw)["order_no"] == order_no:
            assert verify(TEST_HOTLINE_CALLBACK_SECRET, headers["webhook-id"],
                          int(headers["webhook-timestamp"]), raw,
                          headers["webhook-signature"])
            assert b"13800138000" not in raw
    # Every callback was refused at least once and retried: in order all the same.
    assert len(platform.refused) >= len(expected)
    assert max(platform.refused.values()) == 4


async def _now(value: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return value


class Subscriber:
    """A department's (or a leader's) webhook receiver: keeps every event it is sent."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request) -> Response:
            self.events.append(orjson.loads(await request.body()))
            return Response(status_code=204)

    async def of(self, case_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["data"]["case_id"] == case_id]


async def test_the_hotlines_updates_after_the_order_reach_the_case_its_leaders_and_the_figures(
        services: dict[str, str], hotline: tuple[HotlinePlatform, str], unique: str) -> None:
    _, callback_url = hotline
    subscriber = Subscriber()
    order_no = f"GD-UPD-{unique}"
    # A received time of its own to the microsecond: the figures below count this order alone.
    received = datetime.now(CHINA).replace(microsecond=int(unique[:5], 16) % 1_000_000)
    updates = f"{services['mediation']}/v1/hotline/orders/{order_no}/updates"
    async with serve(subscriber.app) as hook_url, \
            httpx.AsyncClient(headers=AUTH, timeout=10) as client:
        sub = await client.post(services["notify"] + "/v1/subscriptions", json={
            "name": f"leaders {unique}", "url": hook_url + "/hook",
            "kinds": ["lifecycle", "supervision"]})
        assert sub.status_code == 201, sub.text
        case = await post_order(client, services, order_no, received, callback_url)
        case_id = case["case_id"]
        mediation = f"{services['mediation']}/v1/cases/{case_id}"

        async def update(**body: Any) -> dict[str, Any]:
            r = await client.post(updates, json=body)
            assert r.status_code == 200, r.text
            return dict(r.json())

        await update(update_id=f"S-{unique}", kind="supplement",
                     text="来电人补充：噪音多在晚上十点以后，电话13912345678")
        history = (await client.get(mediation)).json()["history"]
        supplement = [h for h in history if h.get("activity") == "hotline_supplement"]
        assert supplement and "139****5678" in supplement[0]["data"]["notes"]

        chased = await update(update_id=f"C-{unique}", kind="chaser", text="来电催问进度")
        assert chased["notice"]["action"] == "issued" and chased["notice"]["level"] == "urge"
        assert chased["case"]["chasers"] == 1
        told = await eventually(lambda: subscriber.of(case_id), lambda got: any(
            e["data"].get("notice") and e["data"]["notice"]["action"] == "issued"
            for e in got), 60)
        notice = next(e for e in told if e["data"].get("notice"))
        assert notice["type"] == "cn.fengqiao.case.supervision.v1"
        assert notice["data"]["notice"]["level"] == "urge"
        assert notice["data"]["lead_department"] == case["lead_department"]

        later = received + timedelta(days=10)
        moved = await update(update_id=f"D-{unique}", kind="deadline_change",
                             deadline=later.isoformat())
        assert datetime.fromisoformat(moved["case"]["resolve_by"]) == later
        assert (await client.get(mediation)).json()["resolve_by_source"] == "hotline"

        version = int(moved["case"]["version"])
        for to_status, data in (("accepted", {}), ("in_mediation", {}), (
                "resolved", {"agreement": "楼上住户暂停夜间施工", "agreement_amount": 0}),
                ("closed", {})):
            r = await client.post(mediation + "/transitions", json={
                "to_status": to_status, "actor": "王调解员", "expected_version": version,
                "data": data})
            assert r.status_code == 200, r.text
            version = int(r.json()["case"]["version"])
        rated = await update(update_id=f"F-{unique}", kind="follow_up", satisfaction=5,
                             text="回访群众，对处理结果非常满意")
        assert [t["to_status"] for t in rated["transitions"]] == ["visited", "rated"]
        stats = await client.get(services["mediation"] + "/v1/stats", params={
            "channel": "hotline_12345", "received_from": received.isoformat(),
            "received_to": (received + timedelta(microseconds=1)).isoformat()})
        assert stats.status_code == 200, stats.text
        total = stats.json()["total"]
        assert total["received"] == 1 and total["rated"] == 1
        assert total["satisfaction_mean"] == 5.0


def _hotline_key(database_url: str, run_dir: Path, name: str) -> dict[str, str]:
    """`fengqiao keys create --profile hotline --channel hotline_12345`, as an operator runs
    it, on the services' key store."""
    env = {**os.environ, **FAST_ENV, "FQ_VAR_DIR": str(run_dir / VAR)}
    if not database_url.startswith("sqlite"):
        env["FQ_DATABASE_URL"] = database_url
    made = subprocess.run(
        [sys.executable, "-m", "kit.cli", "keys", "create", "--name", name, "--profile",
         "hotline", "--channel", "hotline_12345"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return dict(json.loads(made.stdout.strip().splitlines()[-1]))


async def test_a_registered_endpoint_gets_the_callbacks_of_an_order_without_callback_url(
        services: dict[str, str], database_url: str, run_dir: Path, unique: str) -> None:
    got: list[tuple[dict[str, str], bytes]] = []
    receiver = FastAPI()

    @receiver.post("/12345/registered")
    async def registered(request: Request) -> Response:
        got.append((dict(request.headers), await request.body()))
        return Response(status_code=200)

    made = _hotline_key(database_url, run_dir, f"12345 vendor {unique}")
    key = {"Authorization": f"Bearer {made['key']}"}
    order_no = f"GD-E2E-EP-{unique}"
    async with serve(receiver) as receiver_url, httpx.AsyncClient(timeout=10) as client:
        endpoint = await client.put(services["notify"] + "/v1/hotline/endpoint", headers=key,
                                    json={"url": receiver_url + "/12345/registered"})
        assert endpoint.status_code == 201, endpoint.text
        assert endpoint.json()["key_id"] == made["key_id"]
        secret = endpoint.json()["secret"]
        posted = await client.post(services["intake"] + "/v1/intake/hotline_12345",
                                   headers=key, json={
            "order_no": order_no, "content": "小区门口夜市占道经营，噪音扰民。",
            "received_at": datetime.now(CHINA).replace(microsecond=0).isoformat()})
        assert posted.status_code == 202, posted.text
        case_id = posted.json()["case_id"]

        async def fetch_case() -> httpx.Response:
            return await client.get(f"{services['mediation']}/v1/cases/{case_id}",
                                    headers=key)
        case = (await eventually(fetch_case, lambda r: r.status_code == 200
                                 and r.json()["status"] == "routed", 60)).json()
        accepted = await client.post(
            f"{services['mediation']}/v1/cases/{case_id}/transitions", headers=AUTH,
            json={"to_status": "accepted", "actor": "李调解员",
                  "expected_version": case["version"]})
        assert accepted.status_code == 200, accepted.text
        await eventually(lambda: _now(got), lambda posts: len(posts) >= 1, 60)
    headers, raw = got[0]
    signed_for = orjson.loads(raw)
    assert signed_for["step"] == "signed_for" and signed_for["order_no"] == order_no
    assert signed_for["case_id"] == case_id
    assert verify(secret, headers["webhook-id"], int(headers["webhook-timestamp"]), raw,
                  headers["webhook-signature"])
    assert not verify(TEST_HOTLINE_CALLBACK_SECRET, headers["webhook-id"],
                      int(headers["webhook-timestamp"]), raw, headers["webhook-signature"])
