"""A hotline integration's registered callback endpoint (issue 23), through the real intake,
router, mediation and notify on the session's broker and database, with the hotline's
receiver on loopback: registered once by the key that posts the orders, read without its
secret, rotated (two signatures during the overlap), deleted; the callbacks of an order
without callback_url arrive there signed with its secret, only the steps it asked for; an
order's own callback_url still wins; another key cannot touch it; a bad URL is 422."""

from __future__ import annotations

import importlib
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from kit.auth import KeyStore, key_scopes
from kit.db import create_engine
from services.notify.domain import verify
from services.notify.store import cases
from tests.infra import (
    AUTH,
    TEST_HOTLINE_CALLBACK_SECRET,
    Isolated,
    eventually,
    free_port,
    serve,
    service_settings,
)

pytestmark = [pytest.mark.integration, pytest.mark.both_backends]

SERVICES = ("intake", "router", "mediation", "notify")
METADATA_NETWORK = "169.254.0.0/16"
NOISE = "楼上邻居每天深夜噪音扰民，多次沟通无果。"


@dataclass
class Receiver:
    """The hotline's callback receiver at /hook/{name}: keeps every post, answers 204."""

    got: dict[str, list[tuple[dict[str, str], bytes]]] = field(
        default_factory=lambda: defaultdict(list))

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook/{name}")
        async def hook(name: str, request: Request) -> Response:
            self.got[name].append((dict(request.headers), await request.body()))
            return Response(status_code=204)

        return app

    def steps(self, name: str, order_no: str) -> list[dict[str, Any]]:
        bodies = [orjson.loads(body) for _, body in self.got[name]]
        return [b for b in bodies if b["order_no"] == order_no]

    def posts(self, name: str, order_no: str) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b in self.got[name] if orjson.loads(b)["order_no"] == order_no]


@dataclass
class Platform:
    urls: dict[str, str]
    receiver_url: str
    receiver: Receiver
    client: httpx.AsyncClient
    keys: KeyStore
    notify_db: AsyncEngine

    async def notified(self, case_id: str, status: str) -> None:
        """Wait until notify has handled the case's step to `status` (and so every step
        before it: one case's steps are handled in order)."""
        async def known() -> str | None:
            async with self.notify_db.connect() as conn:
                return (await conn.execute(select(cases.c.status).where(
                    cases.c.case_id == case_id))).scalar()
        await eventually(known, lambda found: found == status, within=60)

    async def hotline_key(self) -> tuple[str, dict[str, str]]:
        """What `fengqiao keys create --profile hotline --channel hotline_12345` makes."""
        channels = ["hotline_12345"]
        key_id, token = await self.keys.create("hotline vendor", key_scopes(
            "hotline", [], channels), channels=channels)
        return key_id, {"Authorization": f"Bearer {token}"}

    def hook(self, name: str) -> str:
        return f"{self.receiver_url}/hook/{name}"

    async def endpoint(self, method: str, key: dict[str, str], path: str = "",
                       **kwargs: Any) -> httpx.Response:
        return await self.client.request(method, self.urls["notify"] + "/v1/hotline/endpoint"
                                         + path, headers=key, **kwargs)

    async def order(self, key: dict[str, str], order_no: str, callback_url: str | None = None
                    ) -> str:
        body: dict[str, Any] = {"order_no": order_no, "content": NOISE,
                                "received_at": datetime.now(UTC).isoformat()}
        if callback_url:
            body["callback_url"] = callback_url
        posted = await self.client.post(self.urls["intake"] + "/v1/intake/hotline_12345",
                                        headers=key, json=body)
        assert posted.status_code == 202, posted.text
        return str(posted.json()["case_id"])

    async def case(self, case_id: str, status: str) -> dict[str, Any]:
        async def fetch() -> httpx.Response:
            return await self.client.get(f"{self.urls['mediation']}/v1/cases/{case_id}",
                                         headers=AUTH)
        found = await eventually(fetch, lambda r: r.status_code == 200
                                 and r.json()["status"] == status, within=60)
        return dict(found.json())

    async def move(self, case_id: str, to_status: str, version: int, **data: Any) -> int:
        moved = await self.client.post(
            f"{self.urls['mediation']}/v1/cases/{case_id}/transitions", headers=AUTH,
            json={"to_status": to_status, "actor": "王调解员", "expected_version": version,
                  "data": data})
        assert moved.status_code == 200, moved.text
        return int(moved.json()["case"]["version"])

    async def note(self, case_id: str, note: str) -> None:
        noted = await self.client.post(
            f"{self.urls['mediation']}/v1/cases/{case_id}/progress-notes", headers=AUTH,
            json={"note": note, "actor": "王调解员"})
        assert noted.status_code == 200, noted.text

    async def callbacks(self, name: str, order_no: str, count: int
                        ) -> list[dict[str, Any]]:
        async def got() -> list[dict[str, Any]]:
            return self.receiver.steps(name, order_no)
        return await eventually(got, lambda steps: len(steps) >= count, within=60)


@pytest.fixture(scope="module")
async def platform(isolated: Isolated) -> AsyncIterator[Platform]:
    # A broker and a database of this module's own: in the shared ones, other modules'
    # failing deliveries (receivers long gone), retried every half second under this
    # module's backoff, kept the sender's slots full and the callbacks here waiting.
    broker, database_url, run_dir = isolated.broker, isolated.database_url, isolated.directory
    ports = {name: free_port() for name in SERVICES}
    overrides: dict[str, object] = {
        "rate_limit_per_second": 0, "sms_enabled": False,
        "mediation_url": f"http://127.0.0.1:{ports['mediation']}",
        "delivery_backoff_base_seconds": 0.1, "delivery_backoff_max_seconds": 0.5,
        # Loopback stays allowed (the receiver is there); the metadata range is refused.
        "webhook_denied_networks": [METADATA_NETWORK]}
    if database_url.startswith("sqlite"):
        # One key store for the services, as one PostgreSQL database gives them.
        overrides["auth_database_url"] = f"sqlite+aiosqlite:///{run_dir / 'endpoint-auth.db'}"
    settings = {name: service_settings(name, broker.bootstrap, database_url, run_dir,
                                       **overrides) for name in SERVICES}
    apps = {name: importlib.import_module(f"services.{name}.main").create(s)
            for name, s in settings.items()}
    receiver = Receiver()
    async with AsyncExitStack() as stack:
        receiver_url = await stack.enter_async_context(serve(receiver.app()))
        urls = {name: await stack.enter_async_context(serve(app, ports[name]))
                for name, app in apps.items()}
        client = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        engine = create_engine(settings["intake"].effective_auth_database_url())
        stack.push_async_callback(engine.dispose)
        notify_db = create_engine(settings["notify"].effective_database_url())
        stack.push_async_callback(notify_db.dispose)
        yield Platform(urls, receiver_url, receiver, client, KeyStore(engine), notify_db)


def signed_with(secret: str, headers: dict[str, str], body: bytes) -> bool:
    return verify(secret, headers["webhook-id"], int(headers["webhook-timestamp"]), body,
                  headers["webhook-signature"])


async def test_a_hotline_registers_reads_rotates_and_deletes_its_endpoint(
        platform: Platform, unique: str) -> None:
    _, key = await platform.hotline_key()
    assert (await platform.endpoint("GET", key)).status_code == 404
    made = await platform.endpoint("PUT", key, json={"url": platform.hook(f"a{unique}")})
    assert made.status_code == 201, made.text
    created = made.json()
    assert created["secret"].startswith("whsec_")
    assert created["url"] == platform.hook(f"a{unique}")
    assert created["kinds"] == ["signed_for", "progress", "extension_requested",
                                "extension_approved", "extension_denied", "returned",
                                "closed", "visited", "rated"]
    assert created["previous_secret_expires_at"] is None

    replaced = await platform.endpoint("PUT", key, json={
        "url": platform.hook(f"b{unique}"), "kinds": ["closed", "signed_for"]})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["secret"] is None  # shown once, at creation
    assert replaced.json()["kinds"] == ["signed_for", "closed"]

    read = await platform.endpoint("GET", key)
    assert read.status_code == 200
    assert "secret" not in read.json() and created["secret"] not in read.text
    assert read.json()["url"] == platform.hook(f"b{unique}")

    rotated = await platform.endpoint("POST", key, "/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != created["secret"]
    overlap = datetime.fromisoformat(rotated.json()["previous_secret_expires_at"])
    assert timedelta(hours=23) < overlap - datetime.now(UTC) <= timedelta(hours=24)
    after = await platform.endpoint("GET", key)
    assert after.json()["previous_secret_expires_at"] is not None
    assert rotated.json()["secret"] not in after.text

    assert (await platform.endpoint("DELETE", key)).status_code == 204
    assert (await platform.endpoint("GET", key)).status_code == 404
    assert (await platform.endpoint("DELETE", key)).status_code == 404
    assert (await platform.endpoint("POST", key, "/rotate-secret")).status_code == 404
    again = await platform.endpoint("PUT", key, json={"url": platform.hook(f"a{unique}")})
    assert again.status_code == 201 and again.json()["secret"] != created["secret"]


async def test_an_order_without_callback_url_calls_back_the_registered_endpoint_signed(
        platform: Platform, unique: str) -> None:
    key_id, key = await platform.hotline_key()
    hook = f"reg{unique}"
    made = await platform.endpoint("PUT", key, json={"url": platform.hook(hook) + "?t=tok"})
    secret = made.json()["secret"]
    order_no = f"EP-{unique}"
    case_id = await platform.order(key, order_no)
    routed = await platform.case(case_id, "routed")
    await platform.move(case_id, "accepted", routed["version"])

    [signed_for] = await platform.callbacks(hook, order_no, 1)
    assert signed_for["step"] == "signed_for" and signed_for["case_id"] == case_id
    [(headers, raw)] = platform.receiver.posts(hook, order_no)
    assert signed_with(secret, headers, raw)
    assert not signed_with(TEST_HOTLINE_CALLBACK_SECRET, headers, raw)
    assert len(headers["webhook-signature"].split()) == 1

    # The delivery log, read with the hotline's own key, shows where it went.
    async def log() -> httpx.Response:
        return await platform.client.get(platform.urls["notify"] + "/v1/deliveries",
                                         headers=key, params={
            "case_id": case_id, "target": "hotline_feedback"})
    answer = await eventually(log, lambda r: [d["status"] for d in r.json()["items"]]
                              == ["succeeded"])
    [delivery] = answer.json()["items"]
    assert delivery["target"] == "hotline_feedback"
    assert delivery["url"] == platform.hook(hook)  # without its query (a token)
    assert delivery["integration_key_id"] == key_id

    # Rotated: during the overlap each callback carries two signatures, one per secret, and
    # the receiver may verify with either.
    rotated = await platform.endpoint("POST", key, "/rotate-secret")
    await platform.note(case_id, "已约双方面谈")
    await platform.callbacks(hook, order_no, 2)
    headers, raw = platform.receiver.posts(hook, order_no)[1]
    assert orjson.loads(raw)["step"] == "progress"
    assert len(headers["webhook-signature"].split()) == 2
    assert signed_with(secret, headers, raw)
    assert signed_with(rotated.json()["secret"], headers, raw)


async def test_the_endpoint_gets_only_the_steps_it_asked_for(
        platform: Platform, unique: str) -> None:
    _, key = await platform.hotline_key()
    hook = f"closed{unique}"
    await platform.endpoint("PUT", key, json={"url": platform.hook(hook), "kinds": ["closed"]})
    order_no = f"EPK-{unique}"
    case_id = await platform.order(key, order_no)
    version = (await platform.case(case_id, "routed"))["version"]
    version = await platform.move(case_id, "accepted", version)
    await platform.note(case_id, "过程反馈不需要")
    version = await platform.move(case_id, "in_mediation", version + 1)
    version = await platform.move(case_id, "resolved", version, agreement="暂停夜间施工",
                                  agreement_amount=0)
    await platform.move(case_id, "closed", version)
    # Callbacks of one order go out in order: once the closure is there, nothing earlier
    # is on its way.
    steps = await platform.callbacks(hook, order_no, 1)
    assert [s["step"] for s in steps] == ["closed"]
    assert "暂停夜间施工" in steps[0]["result"]
    log = await platform.client.get(platform.urls["notify"] + "/v1/deliveries", headers=AUTH,
                                    params={"case_id": case_id, "target": "hotline_feedback"})
    assert [d["kind"] for d in log.json()["items"]] == ["lifecycle.closed"]


async def test_an_orders_own_callback_url_still_gets_its_callbacks(
        platform: Platform, unique: str) -> None:
    _, key = await platform.hotline_key()
    registered, own = f"unused{unique}", f"own{unique}"
    await platform.endpoint("PUT", key, json={"url": platform.hook(registered)})
    order_no = f"EPO-{unique}"
    case_id = await platform.order(key, order_no, callback_url=platform.hook(own))
    routed = await platform.case(case_id, "routed")
    await platform.move(case_id, "accepted", routed["version"])
    [signed_for] = await platform.callbacks(own, order_no, 1)
    assert signed_for["step"] == "signed_for"
    [(headers, raw)] = platform.receiver.posts(own, order_no)
    assert signed_with(TEST_HOTLINE_CALLBACK_SECRET, headers, raw)  # as before: the settings'
    assert platform.receiver.got[registered] == []
    async def log() -> httpx.Response:
        return await platform.client.get(platform.urls["notify"] + "/v1/deliveries",
                                         headers=AUTH, params={
            "case_id": case_id, "target": "hotline_feedback"})
    answer = await eventually(log, lambda r: [d["status"] for d in r.json()["items"]]
                              == ["succeeded"])
    [delivery] = answer.json()["items"]
    assert delivery["url"] == platform.hook(own) and delivery["integration_key_id"] is None


async def test_an_order_of_a_key_without_an_endpoint_calls_nobody_back(
        platform: Platform, unique: str) -> None:
    """As before the endpoints: no callback_url and nothing registered, no callback."""
    _, key = await platform.hotline_key()
    _, watcher_key = await platform.hotline_key()
    order_no = f"EPN-{unique}"
    case_id = await platform.order(key, order_no)
    routed = await platform.case(case_id, "routed")
    # Another integration's endpoint is not this order's.
    await platform.endpoint("PUT", watcher_key, json={"url": platform.hook(f"w{unique}")})
    version = await platform.move(case_id, "accepted", routed["version"])
    await platform.move(case_id, "withdrawn", version)
    await platform.notified(case_id, "withdrawn")
    log = await platform.client.get(platform.urls["notify"] + "/v1/deliveries", headers=AUTH,
                                    params={"case_id": case_id, "target": "hotline_feedback"})
    assert log.json()["items"] == []
    assert platform.receiver.got[f"w{unique}"] == []


async def test_another_key_cannot_read_or_change_this_keys_endpoint(
        platform: Platform, unique: str) -> None:
    owner_id, owner = await platform.hotline_key()
    _, other = await platform.hotline_key()
    made = await platform.endpoint("PUT", owner, json={"url": platform.hook(f"o{unique}")})
    assert made.status_code == 201
    # The other key's calls are about its own endpoint, which it does not have.
    assert (await platform.endpoint("GET", other)).status_code == 404
    assert (await platform.endpoint("POST", other, "/rotate-secret")).status_code == 404
    assert (await platform.endpoint("DELETE", other)).status_code == 404
    # Its PUT makes its own; the owner's stays as it was.
    mine = await platform.endpoint("PUT", other, json={"url": platform.hook(f"x{unique}")})
    assert mine.status_code == 201 and mine.json()["key_id"] != owner_id
    kept = await platform.endpoint("GET", owner)
    assert kept.json()["url"] == platform.hook(f"o{unique}")
    assert kept.json()["previous_secret_expires_at"] is None
    # Keys without the scope are refused; an admin sees every endpoint, never a secret.
    _, reader = await platform.keys.create("reader", ["cases:read"])
    assert (await platform.endpoint("GET", {"Authorization": f"Bearer {reader}"})
            ).status_code == 403
    listed = await platform.client.get(platform.urls["notify"] + "/v1/hotline/endpoints",
                                       headers=AUTH)
    assert listed.status_code == 200
    assert owner_id in {e["key_id"] for e in listed.json()}
    assert made.json()["secret"] not in listed.text
    refused = await platform.client.get(platform.urls["notify"] + "/v1/hotline/endpoints",
                                        headers=owner)
    assert refused.status_code == 403
    removed = await platform.client.delete(
        platform.urls["notify"] + f"/v1/hotline/endpoints/{owner_id}", headers=AUTH)
    assert removed.status_code == 204
    assert (await platform.endpoint("GET", owner)).status_code == 404


@pytest.mark.parametrize("url", [
    "not a url", "ftp://hotline.example/cb", "http://169.254.169.254/latest/meta-data",
    "https://hotline.example/" + "x" * 2100])
async def test_a_bad_url_is_refused_naming_url(platform: Platform, url: str) -> None:
    _, key = await platform.hotline_key()
    refused = await platform.endpoint("PUT", key, json={"url": url})
    assert refused.status_code == 422, refused.text
    assert [f["field"] for f in refused.json()["fields"]] == ["url"]
    assert (await platform.endpoint("GET", key)).status_code == 404


async def test_unknown_kinds_and_fields_are_refused(platform: Platform, unique: str) -> None:
    _, key = await platform.hotline_key()
    for body, name in (({"url": platform.hook(unique), "kinds": ["routed"]}, "kinds"),
                       ({"url": platform.hook(unique), "kinds": []}, "kinds"),
                       ({"url": platform.hook(unique), "secret": "whsec_x"}, "secret")):
        refused = await platform.endpoint("PUT", key, json=body)
        assert refused.status_code == 422, refused.text
        assert any(name in f["field"] for f in refused.json()["fields"]), refused.text
