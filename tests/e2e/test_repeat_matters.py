"""End to end, the four services as processes on the real broker and database, with a real
webhook receiver and hotline callback on loopback: three 12345 orders from one phone number
show as related; two of them merged are one matter, and when it closes both orders receive
their result (and both callers their SMS); the red case proposes a leader owner; a
supervision notice unanswered by its deadline rises one level and reaches the leader's
webhook; the figures count the matter once."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request, Response

from kit.settings import SERVICE_PORTS
from tests.e2e.test_pipeline import _wait_until_consuming
from tests.infra import AUTH, Broker, eventually, free_port, serve, service_processes

pytestmark = [pytest.mark.e2e]

PHONE = "13800138017"


@pytest.fixture(scope="module")
def services(broker: Broker, database_url: str, run_dir: Path) -> Iterator[dict[str, str]]:
    ports = {name: free_port() for name in SERVICE_PORTS if name != "workbench"}
    with service_processes(ports, bootstrap=broker.bootstrap, database_url=database_url,
                           var=run_dir / "e2e-repeats",
                           env={"FQ_DELIVERY_BACKOFF_BASE_SECONDS": "0.2",
                                "FQ_SUPERVISION_INTERVAL_SECONDS": "0.2",
                                # A centre that texts 12345 callers too (by default the
                                # hotline does): each merged order's caller gets the SMS.
                                "FQ_SMS_CHANNELS": '["hotline_12345", "walk_in"]'}) as started:
        urls = {name: s.url for name, s in started.items()}
        _wait_until_consuming(urls)
        yield urls


class Receiver:
    """The leader's webhook and the hotline platform's callback: keeps every body."""

    def __init__(self) -> None:
        self.webhooks: list[dict[str, Any]] = []
        self.feedback: list[dict[str, Any]] = []
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request) -> Response:
            self.webhooks.append(orjson.loads(await request.body()))
            return Response(status_code=204)

        @self.app.post("/callback")
        async def callback(request: Request) -> Response:
            self.feedback.append(orjson.loads(await request.body()))
            return Response(status_code=200)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    r = Receiver()
    async with serve(r.app) as url:
        yield r, url


async def _step(client: httpx.AsyncClient, url: str, case_id: str, to_status: str,
                data: dict[str, Any] | None = None) -> None:
    read = await client.get(f"{url}/v1/cases/{case_id}")
    assert read.status_code == 200, read.text
    case = read.json()
    stepped = await client.post(f"{url}/v1/cases/{case_id}/transitions", json={
        "to_status": to_status, "actor": "王调解员", "expected_version": case["version"],
        "data": data or {}})
    assert stepped.status_code == 200, stepped.text


async def test_repeat_reports_merged_owned_supervised_and_counted_once(
        services: dict[str, str], receiver: tuple[Receiver, str], unique: str) -> None:
    hooks, receiver_url = receiver
    mediation = services["mediation"]
    # A second of its own in November, so the figures over it are this test's cases only.
    received = (datetime(2026, 11, 1, tzinfo=UTC)
                + timedelta(seconds=random.randrange(25 * 86400)))
    orders = [f"RM{i}-{unique}" for i in range(3)]
    texts = ["邻居因为占用停车位与我发生争执，还说要找人打断我的腿。",
             "还是停车位的事，邻居又把车堵在我家门口。",
             "停车位纠纷第三次反映，邻居仍然占用。"]
    async with httpx.AsyncClient(headers=AUTH, timeout=30) as client:
        leader_hook = await client.post(services["notify"] + "/v1/subscriptions", json={
            "name": f"leader {unique}", "url": receiver_url + "/hook",
            "kinds": ["supervision.notice.raised"]})
        assert leader_hook.status_code == 201, leader_hook.text

        case_ids = []
        for i, (order, text) in enumerate(zip(orders, texts, strict=True)):
            posted = await client.post(services["intake"] + "/v1/intake/hotline_12345", json={
                "order_no": order, "content": text, "caller_name": "王女士",
                "caller_phone": PHONE, "callback_url": receiver_url + "/callback",
                "received_at": (received + timedelta(milliseconds=100 * i)).isoformat()})
            assert posted.status_code == 202, posted.text
            case_ids.append(posted.json()["case_id"])
        first, second, third = case_ids

        async def routed() -> list[dict[str, Any]]:
            return [(await client.get(f"{mediation}/v1/cases/{c}")).json() for c in case_ids]
        cases = await eventually(routed, lambda cs: all(c.get("status") == "routed"
                                                        for c in cs), within=60)

        # 1. Related by the caller's number (its keyed hash), never in clear.
        related = await client.get(f"{mediation}/v1/cases/{first}/related")
        assert related.status_code == 200, related.text
        relations = {i["case_id"]: i["relations"] for i in related.json()["items"]}
        assert "same_party" in relations[second] and "same_party" in relations[third]
        assert PHONE not in related.text

        # 2. The red case proposes a leader owner, who takes it.
        assert cases[0]["risk"] == "red" and cases[0]["owner_proposed"] is True
        owned = await client.post(f"{mediation}/v1/cases/{first}/ownership", json={})
        assert owned.status_code == 200 and owned.json()["owner"]

        # 3. Two reports merged: one matter.
        merged = await client.post(f"{mediation}/v1/cases/{first}/merge", json={
            "case_ids": [second], "reason": "同一停车位纠纷"})
        assert merged.status_code == 200, merged.text
        figures = (await client.get(f"{mediation}/v1/stats", params={
            "received_from": received.isoformat(),
            "received_to": (received + timedelta(seconds=1)).isoformat()})).json()["total"]
        assert (figures["received"], figures["reports"], figures["merged"]) == (2, 3, 1)

        # 4. A notice unanswered by its deadline rises one level and reaches the leader.
        notice = await client.post(f"{mediation}/v1/cases/{third}/supervision-notices", json={
            "level": "urge", "asked": "请一小时内反馈处置情况",
            "answer_by": (datetime.now(UTC) + timedelta(seconds=2)).isoformat()})
        assert notice.status_code == 201, notice.text

        def raised() -> list[dict[str, Any]]:
            return [w for w in hooks.webhooks if w["data"]["case_id"] == third]
        told = await eventually(_now(raised), lambda ws: any(
            w["data"]["notice"]["level"] == "supervise" for w in ws), within=60)
        # Unanswered, it goes on rising (督办, then 挂牌督办 two seconds later), and webhooks
        # to one subscription may arrive out of order: the first raise is among them.
        one_up = next(w for w in told if w["data"]["notice"]["level"] == "supervise")
        assert one_up["data"]["notice"]["action"] == "raised"  # 催办 → 督办
        assert one_up["data"]["notice"]["notice_id"] == notice.json()["notice_id"]

        # 5. The main case closes: both orders receive their result.
        for to_status, data in (("accepted", {}), ("in_mediation", {}),
                                ("resolved", {"agreement": "重新划定车位，互不占用",
                                              "agreement_amount": 0}), ("closed", {})):
            await _step(client, mediation, first, to_status, data)

        def results() -> dict[str, dict[str, Any]]:
            return {f["order_no"]: f for f in hooks.feedback
                    if f["order_no"] in orders and f["status"] == "closed"}
        fed_back = await eventually(_now(results), lambda r: len(r) >= 2, within=60)
        assert set(fed_back) == {orders[0], orders[1]}
        for order in orders[:2]:
            assert "重新划定车位" in fed_back[order]["result"]
            assert fed_back[order]["case_id"] in (first, second)
        merged_case = (await client.get(f"{mediation}/v1/cases/{second}")).json()
        assert merged_case["status"] == "closed" and merged_case["merged_into"] == first

        async def sms() -> list[dict[str, Any]]:
            answer = await client.get(services["notify"] + "/v1/deliveries",
                                      params={"case_id": second, "target": "sms"})
            return [d for d in answer.json()["items"] if d["kind"] == "sms.closed"]
        assert await eventually(sms, lambda ds: len(ds) == 1, within=30)

        figures = (await client.get(f"{mediation}/v1/stats", params={
            "received_from": received.isoformat(),
            "received_to": (received + timedelta(seconds=1)).isoformat()})).json()["total"]
        assert (figures["received"], figures["closed"], figures["reports"]) == (2, 1, 3)


def _now(get: Any) -> Any:
    async def fetch() -> Any:
        return get()
    return fetch
