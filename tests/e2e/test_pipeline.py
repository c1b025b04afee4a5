"""End to end: the four services as separate processes on the real broker and database; a
12345 work order goes in, a routed case comes out of mediation, and the lead department's
webhook receiver on loopback gets a signed notification."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request, Response

from kit.settings import SERVICE_PORTS
from services.notify.domain import verify
from tests.infra import AUTH, Broker, eventually, free_port, serve, service_processes

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def services(broker: Broker, database_url: str, run_dir: Path) -> Iterator[dict[str, str]]:
    ports = {name: free_port() for name in SERVICE_PORTS}
    with service_processes(ports, bootstrap=broker.bootstrap, database_url=database_url,
                           var=run_dir / "e2e",
                           env={"FQ_DELIVERY_BACKOFF_BASE_SECONDS": "0.2"}) as started:
        urls = {name: s.url for name, s in started.items()}
        _wait_until_consuming(urls)
        yield urls


def _wait_until_consuming(urls: dict[str, str], within: float = 90.0) -> None:
    """Ready is not yet consuming: each group must first (re)join on the session's broker,
    where earlier tests' members of the same groups may still have to time out."""
    deadline = time.monotonic() + within
    waiting = set(urls)  # each service's consumer group is named after it
    while waiting and time.monotonic() < deadline:
        for name in sorted(waiting):
            metrics = httpx.get(urls[name] + "/metrics", timeout=5).text
            if f'fq_consumer_lag_messages{{group="{name}"' in metrics:
                waiting.discard(name)
        time.sleep(0.2)
    assert not waiting, f"consumer groups without partitions after {within}s: {waiting}"


class Receiver:
    """A webhook receiver that knows only its secret and answers 500 to the first attempt
    of every message, so each delivery needs one retry."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.failed_once: set[str] = set()
        self.secret = ""
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            message_id = request.headers.get("webhook-id", "")
            if message_id not in self.failed_once:
                self.failed_once.add(message_id)
                return Response(status_code=500)
            self.received.append((dict(request.headers), body))
            return Response(status_code=204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    r = Receiver()
    async with serve(r.app) as url:
        yield r, url + "/hook"


async def test_work_order_is_routed_stored_and_notified(
        services: dict[str, str], receiver: tuple[Receiver, str], unique: str) -> None:
    hook, hook_url = receiver
    started = time.monotonic()
    async with httpx.AsyncClient(headers=AUTH, timeout=10) as client:
        sub = await client.post(services["notify"] + "/v1/subscriptions", json={
            "name": "judicial office", "url": hook_url, "departments": ["judicial_office"]})
        assert sub.status_code == 201, sub.text
        hook.secret = sub.json()["secret"]

        order = {"order_no": f"E2E-{unique}", "content":
                 "邻居因为占用停车位与我发生争执，还说要找人打断我的腿。",
                 "received_at": "2026-11-23T09:30:00+08:00", "caller_phone": "13800138000",
                 "category": "邻里纠纷"}
        posted = await client.post(services["intake"] + "/v1/intake/hotline_12345", json=order)
        assert posted.status_code == 202, posted.text
        case_id = posted.json()["case_id"]
        again = await client.post(services["intake"] + "/v1/intake/hotline_12345", json=order)
        assert (again.status_code, again.json()["case_id"]) == (200, case_id)

        async def fetch_case() -> httpx.Response:
            return await client.get(f"{services['mediation']}/v1/cases/{case_id}")

        case = await eventually(fetch_case, lambda r: r.status_code == 200
                                and r.json()["status"] == "routed")
        assert case.status_code == 200, case.text
        body = case.json()
        assert body["status"] == "routed"
        assert (body["channel"], body["external_id"]) == ("hotline_12345", f"E2E-{unique}")
        assert body["category"] == "neighbor"
        assert body["risk"] == "red"
        assert body["tier"] == "town"
        assert body["lead_department"] == "judicial_office"
        assert body["cooperating_departments"] == ["police_station"]
        assert [h["to_status"] for h in body["history"]] == ["reported", "routed"]
        # Written at +08:00, the one clock of everything fengqiao writes (the order said so).
        assert body["received_at"] == "2026-11-23T09:30:00+08:00"
        assert "13800138000" not in case.text
        routed_after = time.monotonic() - started

        listed = await client.get(services["mediation"] + "/v1/cases",
                                  params={"external_id": f"E2E-{unique}"})
        assert [c["case_id"] for c in listed.json()["items"]] == [case_id]

        # The broker is shared by the whole test session: other tests' cases may match too.
        def ours() -> list[tuple[dict[str, str], bytes]]:
            return [(h, b) for h, b in hook.received
                    if orjson.loads(b)["data"]["case_id"] == case_id]

        await eventually(lambda: asyncio.sleep(0, ours()), lambda r: len(r) >= 1)
        await asyncio.sleep(0.5)
        assert len(ours()) == 1, "one notification, after one failed attempt"
        headers, raw = ours()[0]
        assert verify(hook.secret, headers["webhook-id"], int(headers["webhook-timestamp"]),
                      raw, headers["webhook-signature"])
        event = orjson.loads(raw)
        assert event["type"] == "cn.fengqiao.case.routed.v1"
        assert event["data"]["case_id"] == case_id
        assert b"13800138000" not in raw

        deliveries = await client.get(services["notify"] + "/v1/deliveries",
                                      params={"case_id": case_id, "target": "webhook",
                                              "subscription_id": sub.json()["id"]})
        [delivery] = deliveries.json()["items"]
        assert (delivery["status"], delivery["attempts"]) == ("succeeded", 2)
    print(f"\nE2E: routed case readable {routed_after:.2f}s after the post")
