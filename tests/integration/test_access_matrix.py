"""Access control, route by route: every route of every service (read from each app's own
OpenAPI, so a new route without an entry here fails) against every kind of key — none, an
unknown one, a revoked one, the admin key, a key of each single scope, and keys limited to a
department, a jurisdiction or a channel — with the answer each must get. Then what limited
keys see: only cases, figures, audit entries, subscriptions and deliveries within their
limits; another department's case is 404, not 403, so its existence does not leak."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from kit.auth import KeyStore, Scope, key_scopes
from kit.db import create_engine
from kit.settings import SERVICE_PORTS
from services.intake.domain import ADAPTERS
from tests.infra import AUTH, Broker, eventually, free_port, serve, service_settings

pytestmark = pytest.mark.integration

UNAUTHENTICATED = ("none", "wrong", "revoked")
SINGLE_SCOPES = tuple(s for s in Scope if s is not Scope.ADMIN)
LIMITS: dict[str, dict[str, list[str]]] = {
    "department": {"departments": ["judicial_office"]},
    "jurisdiction": {"jurisdictions": ["330699101"]},  # 枫桥镇
    "channel": {"channels": ["grid"]},
}
KINDS = (*UNAUTHENTICATED, "admin", *(f"scope:{s.value}" for s in SINGLE_SCOPES), *LIMITS)
UNREACHABLE_HOOK = "http://127.0.0.1:9/hook"  # the discard port: deliveries fail at once


def scopes_of(kind: str) -> frozenset[str]:
    if kind == "admin":
        return frozenset({Scope.ADMIN.value})
    if kind.startswith("scope:"):
        return frozenset({kind.removeprefix("scope:")})
    if kind in LIMITS:  # every scope but admin: the limits alone decide
        return frozenset(s.value for s in SINGLE_SCOPES)
    return frozenset()


def sees(kind: str, case: dict[str, Any]) -> bool:
    """Whether a key of `kind` may see `case` (an admin's view of it): the rule of
    docs/security.md, written out independently of the services' code."""
    limits = LIMITS.get(kind, {})
    departments = {case["lead_department"], *case["cooperating_departments"]}
    code = case["jurisdiction_code"] or ""
    return ((not limits.get("departments") or bool(departments & set(limits["departments"])))
            and (not limits.get("jurisdictions")
                 or any(code.startswith(j) for j in limits["jurisdictions"]))
            and (not limits.get("channels") or case["channel"] in limits["channels"]))


# --- the services and what they hold ------------------------------------------------------

@dataclass
class World:
    urls: dict[str, str]
    client: httpx.AsyncClient
    tokens: dict[str, str | None] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)  # A, B, C: admin's view
    external_ids: dict[str, str] = field(default_factory=dict)  # one report per channel
    subscription_id: str = ""
    delivery_id: int = 0
    open311_request: str = ""
    open311_token: str = ""
    open311_service: str = ""
    window: tuple[datetime, datetime] = (datetime.min, datetime.min)

    def headers(self, kind: str) -> dict[str, str]:
        token = self.tokens[kind]
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def admin(self, method: str, service: str, path: str, **kwargs: Any
                    ) -> httpx.Response:
        response = await self.client.request(method, self.urls[service] + path,
                                             headers=AUTH, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.text}"
        return response


def _native(channel: str, external_id: str) -> dict[str, Any]:
    natives: dict[str, dict[str, Any]] = {
        "hotline_12345": {"order_no": external_id, "content": "楼上邻居夜里噪音扰民",
                          "received_at": "2026-11-20T08:00:00+08:00"},
        "grid": {"report_id": external_id, "grid_code": "330699001001001",
                 "description": "占道经营"},
        "police": {"incident_no": external_id, "summary": "两车刮擦发生口角"},
        "court": {"case_no": external_id, "summary": "民间借贷纠纷", "claim_amount": 8000},
        "petition": {"petition_no": external_id, "content": "拖欠工资"},
        "walk_in": {"visit_id": external_id, "content": "宅基地界纠纷"},
    }
    return natives[channel]


async def _make_keys(world: World, keys: KeyStore) -> None:
    world.tokens.update(none=None, wrong="fq_" + "x" * 43, admin=AUTH["Authorization"][7:])
    world.key_ids["admin"] = "dev"
    key_id, token = await keys.create("matrix revoked", [Scope.ADMIN.value])
    assert await keys.revoke(key_id)
    world.tokens["revoked"] = token
    for kind in KINDS:
        if kind in world.tokens:
            continue
        key_id, token = await keys.create(f"matrix {kind}", sorted(scopes_of(kind)),
                                          **LIMITS.get(kind, {}))
        world.tokens[kind], world.key_ids[kind] = token, key_id
    # What `fengqiao keys create --profile hotline --channel hotline_12345` makes.
    channels = ["hotline_12345"]
    world.key_ids["hotline"], world.tokens["hotline"] = await keys.create(
        "matrix hotline profile", key_scopes("hotline", [], channels), channels=channels)


async def _seed(world: World, run: str) -> None:
    """Three routed cases in different departments, jurisdictions and channels, one report
    per channel, an Open311 request, a subscription and a (failed) delivery."""
    sub = await world.admin("POST", "notify", "/v1/subscriptions", json={
        "name": "matrix seed", "url": UNREACHABLE_HOOK, "departments": ["judicial_office"]})
    world.subscription_id = sub.json()["id"]
    # A minute of receipt times of its own, for figures that only these cases make.
    start = datetime(2001, 1, 1, tzinfo=UTC) + timedelta(minutes=uuid.uuid4().int % 500_000)
    world.window = (start, start + timedelta(minutes=1))
    at = start.isoformat()
    reports = {
        "A": ("hotline_12345", {"order_no": f"MX-A-{run}", "received_at": at,
                                "content": "邻居因为占用停车位与我发生争执，还说要找人打断我的腿。",
                                "region_code": "330699001", "caller_phone": "13800138000"}),
        "B": ("hotline_12345", {"order_no": f"MX-B-{run}", "received_at": at,
                                "content": "公司拖欠我们十几名工人三个月工资，老板已经失联。",
                                "region_code": "330699101"}),
        "C": ("grid", {"report_id": f"MX-C-{run}", "grid_code": "330699101201001",
                       "description": "邻居家装修噪音扰民，多次沟通无果。"}),
    }
    case_ids = {}
    for name, (channel, payload) in reports.items():
        posted = await world.admin("POST", "intake", f"/v1/intake/{channel}", json=payload)
        case_ids[name] = posted.json()["case_id"]
    for channel in ADAPTERS:
        world.external_ids[channel] = f"MX-{channel}-{run}"
        await world.admin("POST", "intake", f"/v1/intake/{channel}",
                          json=_native(channel, world.external_ids[channel]))
    services = await world.admin("GET", "intake", "/open311/v2/services.json")
    world.open311_service = services.json()[0]["service_code"]
    filed = await world.admin("POST", "intake", "/open311/v2/requests.json", data={
        "service_code": world.open311_service, "description": "路灯不亮",
        "lat": "29.7", "long": "120.2"})
    world.open311_request = filed.json()[0]["service_request_id"]
    world.open311_token = filed.json()[0]["token"]

    for name, case_id in case_ids.items():
        async def fetch(case_id: str = case_id) -> httpx.Response:
            return await world.client.get(f"{world.urls['mediation']}/v1/cases/{case_id}",
                                          headers=AUTH)
        routed = await eventually(fetch, lambda r: r.status_code == 200
                                  and r.json()["status"] == "routed", within=60)
        world.cases[name] = routed.json()

    async def deliveries() -> httpx.Response:
        return await world.admin("GET", "notify", "/v1/deliveries",
                                 params={"subscription_id": world.subscription_id})
    found = await eventually(deliveries, lambda r: bool(r.json()["items"]), within=60)
    world.delivery_id = found.json()["items"][0]["id"]


@pytest.fixture(scope="module")
async def world(broker: Broker, database_url: str, run_dir: Path) -> AsyncIterator[World]:
    overrides: dict[str, object] = {"rate_limit_per_second": 0, "delivery_max_attempts": 1,
                                    "sms_enabled": False}
    if database_url.startswith("sqlite"):
        # One key store for the four services, as one PostgreSQL database gives them.
        overrides["auth_database_url"] = f"sqlite+aiosqlite:///{run_dir / 'matrix-auth.db'}"
    ports = {name: free_port() for name in SERVICE_PORTS}
    # Intake asks mediation about the cases of keys limited to departments or jurisdictions.
    overrides["mediation_url"] = f"http://127.0.0.1:{ports['mediation']}"
    settings = {name: service_settings(name, broker.bootstrap, database_url, run_dir,
                                       **overrides) for name in SERVICE_PORTS}
    apps = {name: importlib.import_module(f"services.{name}.main").create(s)
            for name, s in settings.items()}
    async with AsyncExitStack() as stack:
        urls = {name: await stack.enter_async_context(serve(app, ports[name]))
                for name, app in apps.items()}
        client = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        engine = create_engine(settings["intake"].effective_auth_database_url())
        stack.push_async_callback(engine.dispose)
        world = World(urls, client)
        await _make_keys(world, KeyStore(engine))
        await _seed(world, uuid.uuid4().hex[:8])
        yield world


# --- the matrix ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, str] | None = None


Statuses = frozenset[int]
Build = Callable[[World, str], Awaitable[Call]]
LimitedAnswer = Callable[[World, str], Statuses]


@dataclass(frozen=True)
class Route:
    """`scope`: what the route requires (None: public). `allowed`: the answer to an
    unlimited key holding it. `limited`: the answer to a limited key, when limits decide.
    `open311`: refusals are Open311's 403 with its error list, never 401."""

    scope: Scope | None
    build: Build
    allowed: Statuses
    limited: LimitedAnswer | None = None
    open311: bool = False
    also: tuple[Scope, ...] = ()  # other scopes that admit a key as well


def call(method: str, path: str, **kwargs: Any) -> Build:
    async def build(world: World, kind: str) -> Call:
        return Call(method, path.format(w=world), **kwargs)
    return build


def s(*codes: int) -> Statuses:
    return frozenset(codes)


def only(kinds_and_answers: dict[str, Statuses]) -> LimitedAnswer:
    return lambda world, kind: kinds_and_answers[kind]


def case_answer(name: str, visible: Statuses, hidden: Statuses = s(404)) -> LimitedAnswer:
    return lambda world, kind: visible if sees(kind, world.cases[name]) else hidden


def _unique(channel: str) -> Build:
    async def build(world: World, kind: str) -> Call:
        return Call("POST", f"/v1/intake/{channel}",
                    json=_native(channel, f"MX-{uuid.uuid4().hex[:12]}"))
    return build


def _unique_batch(channel: str) -> Build:
    async def build(world: World, kind: str) -> Call:
        return Call("POST", f"/v1/intake/{channel}/batch",
                    json={"items": [_native(channel, f"MX-{uuid.uuid4().hex[:12]}")]})
    return build


def _lookup(channel: str) -> Build:
    async def build(world: World, kind: str) -> Call:
        return Call("GET", f"/v1/intake/{channel}/reports/{world.external_ids[channel]}")
    return build


def _fresh_subscription(world_path: str) -> Build:
    """Each call gets a subscription of its own, made by the admin (deleting is final)."""
    async def build(world: World, kind: str) -> Call:
        made = await world.admin("POST", "notify", "/v1/subscriptions", json={
            "name": "matrix delete", "url": UNREACHABLE_HOOK})
        return Call("DELETE", world_path.format(id=made.json()["id"]))
    return build


def _own_endpoint(method: str, path: str) -> Build:
    """The calling key's own endpoint: each key that may registers one first (PUT), so
    reading, rotating and deleting it find it whatever ran before."""
    async def build(world: World, kind: str) -> Call:
        await world.client.put(world.urls["notify"] + "/v1/hotline/endpoint",
                               headers=world.headers(kind), json={"url": UNREACHABLE_HOOK})
        return Call(method, path)
    return build


def _hotline_endpoint_for_admin() -> Build:
    """The hotline profile key's endpoint, registered by it, deleted by the caller."""
    async def build(world: World, kind: str) -> Call:
        registered = await world.client.put(
            world.urls["notify"] + "/v1/hotline/endpoint", headers=world.headers("hotline"),
            json={"url": UNREACHABLE_HOOK})
        assert registered.status_code in (200, 201), registered.text
        return Call("DELETE", f"/v1/hotline/endpoints/{world.key_ids['hotline']}")
    return build


def _merge_into_itself() -> Build:
    async def build(world: World, kind: str) -> Call:
        case_id = world.cases["A"]["case_id"]
        return Call("POST", f"/v1/cases/{case_id}/merge",
                    json={"case_ids": [case_id], "reason": "matrix"})
    return build


def _channel_routes() -> dict[tuple[str, str, str], Route]:
    routes = {}
    for channel in ADAPTERS.values():
        code = channel.channel.value
        mine = s(202) if code == "grid" else s(403)
        routes[("intake", "POST", f"/v1/intake/{code}")] = Route(
            Scope.INTAKE_WRITE, _unique(code), s(202), only({
                "department": s(202), "jurisdiction": s(202), "channel": mine}))
        routes[("intake", "POST", f"/v1/intake/{code}/batch")] = Route(
            Scope.INTAKE_WRITE, _unique_batch(code), s(200), only({
                "department": s(200), "jurisdiction": s(200),
                "channel": s(200) if code == "grid" else s(403)}))
        routes[("intake", "GET", f"/v1/intake/{code}/reports/{{external_id}}")] = Route(
            Scope.INTAKE_WRITE, _lookup(code), s(200), only({
                "department": s(200), "jurisdiction": s(200),
                "channel": s(200) if code == "grid" else s(403)}))
    return routes


HEALTH = {(service, "GET", path): Route(None, call("GET", path), s(200))
          for service in SERVICE_PORTS for path in ("/healthz", "/readyz", "/metrics")}

MATRIX: dict[tuple[str, str, str], Route] = {
    **HEALTH,
    # intake
    **_channel_routes(),
    ("intake", "GET", "/v1/intake/cases/{case_id}/contact"): Route(
        Scope.PERSONAL_DATA_READ, call("GET", "/v1/intake/cases/{w.cases[A][case_id]}/contact"),
        s(200), only({
            # Intake knows no department or jurisdiction of a case: such keys get no
            # personal data at all; a channel-limited key only its channel's.
            "department": s(403), "jurisdiction": s(403), "channel": s(404)})),
    ("intake", "GET", "/open311/discovery.{fmt}"): Route(
        None, call("GET", "/open311/discovery.xml"), s(200)),
    ("intake", "GET", "/open311/v2/discovery.{fmt}"): Route(
        None, call("GET", "/open311/v2/discovery.json"), s(200)),
    ("intake", "POST", "/v1/intake/cases/{case_id}/personal-data"): Route(
        Scope.PERSONAL_DATA_REVEAL, call("POST", "/v1/intake/cases/{w.cases[A][case_id]}/"
                                         "personal-data", json={"reason": "matrix"}),
        s(200), lambda world, kind: (
            # Intake asks mediation for keys limited to departments or jurisdictions: a case
            # the key does not see is 404, one its departments do not lead 403.
            s(404) if not sees(kind, world.cases["A"])
            else s(200) if world.cases["A"]["lead_department"] in
            LIMITS[kind].get("departments", [world.cases["A"]["lead_department"]])
            else s(403))),
    ("intake", "GET", "/v1/intake/personal-data/reveals"): Route(
        Scope.AUDIT_READ, call("GET", "/v1/intake/personal-data/reveals",
                               params={"limit": 5}), s(200),
        only({"department": s(403), "jurisdiction": s(403), "channel": s(403)})),
    ("intake", "GET", "/open311/v2/services.{fmt}"): Route(
        None, call("GET", "/open311/v2/services.json"), s(200)),
    ("intake", "GET", "/open311/v2/services/{service_code}.{fmt}"): Route(
        None, call("GET", "/open311/v2/services/{w.open311_service}.json"), s(200)),
    ("intake", "GET", "/open311/v2/requests.{fmt}"): Route(
        None, call("GET", "/open311/v2/requests.json"), s(200)),
    ("intake", "GET", "/open311/v2/requests/{service_request_id}.{fmt}"): Route(
        None, call("GET", "/open311/v2/requests/{w.open311_request}.json"), s(200)),
    ("intake", "GET", "/open311/v2/tokens/{token}.{fmt}"): Route(
        None, call("GET", "/open311/v2/tokens/{w.open311_token}.json"), s(200)),
    ("intake", "POST", "/open311/v2/requests.{fmt}"): Route(
        Scope.INTAKE_WRITE, call("POST", "/open311/v2/requests.json", data={
            "service_code": "other", "description": "井盖缺失", "address_string": "江滨路"}),
        s(201), only({"department": s(201), "jurisdiction": s(201), "channel": s(403)}),
        open311=True),
    # router: reference data and previews, the same for every key that may read them
    ("router", "POST", "/v1/routing/preview"): Route(
        Scope.ROUTING_READ, call("POST", "/v1/routing/preview", json={
            "channel": "hotline_12345", "text": "楼上邻居夜里噪音扰民"}), s(200)),
    ("router", "GET", "/v1/routing/rules"): Route(
        Scope.ROUTING_READ, call("GET", "/v1/routing/rules"), s(200)),
    ("router", "POST", "/v1/routing/rules/reload"): Route(
        Scope.ROUTING_ADMIN, call("POST", "/v1/routing/rules/reload"), s(200)),
    ("router", "GET", "/v1/routing/corrections"): Route(
        Scope.ROUTING_READ, call("GET", "/v1/routing/corrections", params={"limit": 5}),
        s(200)),
    ("router", "GET", "/v1/routing/quality"): Route(
        Scope.ROUTING_READ, call("GET", "/v1/routing/quality"), s(200)),
    # A hotline's intake key reads the region codes it sends (issue 23).
    ("router", "GET", "/v1/jurisdictions"): Route(
        Scope.ROUTING_READ, call("GET", "/v1/jurisdictions", params={"level": "town"}), s(200),
        also=(Scope.INTAKE_WRITE,)),
    ("router", "GET", "/v1/jurisdictions/{code}"): Route(
        Scope.ROUTING_READ, call("GET", "/v1/jurisdictions/330699101"), s(200),
        also=(Scope.INTAKE_WRITE,)),
    # mediation
    ("mediation", "GET", "/v1/cases/{case_id}"): Route(
        Scope.CASES_READ, call("GET", "/v1/cases/{w.cases[A][case_id]}"), s(200),
        case_answer("A", s(200))),
    ("mediation", "GET", "/v1/cases"): Route(
        Scope.CASES_READ, call("GET", "/v1/cases", params={"limit": 5}), s(200)),
    ("mediation", "POST", "/v1/cases/{case_id}/transitions"): Route(
        # A stale version: the answer shows the key got through, and nothing changes.
        Scope.CASES_WRITE, call("POST", "/v1/cases/{w.cases[A][case_id]}/transitions", json={
            "to_status": "accepted", "actor": "matrix", "expected_version": 10**6}),
        s(409), lambda world, kind: (
            s(404) if not sees(kind, world.cases["A"])
            else s(409) if world.cases["A"]["lead_department"] in
            LIMITS[kind].get("departments", [world.cases["A"]["lead_department"]])
            else s(403))),
    ("mediation", "POST", "/v1/cases/{case_id}/assignment"): Route(
        # A stale version again. A department's key never assigns, whatever its scopes.
        Scope.CASES_DISPATCH, call("POST", "/v1/cases/{w.cases[A][case_id]}/assignment", json={
            "lead_department": "judicial_office", "tier": "town", "reason": "matrix",
            "expected_version": 10**6}),
        s(409), lambda world, kind: (
            s(403) if kind == "department"
            else s(409) if sees(kind, world.cases["A"]) else s(404))),
    ("mediation", "POST", "/v1/cases/{case_id}/progress-notes"): Route(
        # A stale version, as for transitions: only the lead department's keys get through.
        Scope.CASES_WRITE, call("POST", "/v1/cases/{w.cases[A][case_id]}/progress-notes",
                                json={"note": "matrix", "expected_version": 10**6}),
        s(409), lambda world, kind: _lead_answer(world, kind)),
    ("mediation", "POST", "/v1/cases/{case_id}/extension-requests"): Route(
        Scope.CASES_WRITE, call("POST", "/v1/cases/{w.cases[A][case_id]}/extension-requests",
                                json={"requested_resolve_by": "2099-01-01T00:00:00+08:00",
                                      "reason": "matrix", "expected_version": 10**6}),
        s(409), lambda world, kind: _lead_answer(world, kind)),
    ("mediation", "POST", "/v1/hotline/orders/{order_no}/extension-decision"): Route(
        # The hotline's key (intake:write): an extension id the order never had is 422; a
        # key limited to another channel is refused; an order out of sight is 404.
        Scope.INTAKE_WRITE, call(
            "POST", "/v1/hotline/orders/{w.cases[A][external_id]}/extension-decision",
            json={"extension_id": "ext_matrix", "decision": "approved"}),
        s(422), lambda world, kind: (
            s(403) if kind == "channel"
            else s(422) if sees(kind, world.cases["A"]) else s(404))),
    ("mediation", "POST", "/v1/hotline/orders/{order_no}/updates"): Route(
        # The hotline's key again: a deadline before the order's receipt is 422 (nothing
        # changes, the update id is not kept); another channel's key 403; out of sight 404.
        Scope.INTAKE_WRITE, call(
            "POST", "/v1/hotline/orders/{w.cases[A][external_id]}/updates",
            json={"update_id": "matrix", "kind": "deadline_change",
                  "deadline": "2000-01-01T00:00:00+08:00"}),
        s(422), lambda world, kind: (
            s(403) if kind == "channel"
            else s(422) if sees(kind, world.cases["A"]) else s(404))),
    # mediation: repeat reports and leaders' work. Each call is refused after the key got
    # through (past deadline, nobody's ownership, merged into itself, not merged), so
    # nothing changes.
    ("mediation", "GET", "/v1/cases/{case_id}/related"): Route(
        Scope.CASES_READ, call("GET", "/v1/cases/{w.cases[A][case_id]}/related"), s(200),
        case_answer("A", s(200))),
    ("mediation", "POST", "/v1/cases/{case_id}/supervision-notices"): Route(
        Scope.CASES_LEAD, call("POST", "/v1/cases/{w.cases[A][case_id]}/supervision-notices",
                               json={"level": "urge", "asked": "matrix",
                                     "answer_by": "2020-01-01T00:00:00+08:00"}),
        s(422), case_answer("A", s(422))),
    ("mediation", "GET", "/v1/cases/{case_id}/supervision-notices"): Route(
        Scope.CASES_READ, call("GET", "/v1/cases/{w.cases[A][case_id]}/supervision-notices"),
        s(200), case_answer("A", s(200))),
    ("mediation", "POST", "/v1/cases/{case_id}/supervision-notices/{notice_id}/answer"): Route(
        # No such notice: 404 once the key may answer for the case; a department that does
        # not lead the case may not (403).
        Scope.CASES_WRITE, call(
            "POST", "/v1/cases/{w.cases[A][case_id]}/supervision-notices/NOPE/answer",
            json={"answer": "matrix"}),
        s(404), lambda world, kind: (
            s(404) if not sees(kind, world.cases["A"])
            else s(404) if world.cases["A"]["lead_department"] in
            LIMITS[kind].get("departments", [world.cases["A"]["lead_department"]])
            else s(403))),
    ("mediation", "POST", "/v1/cases/{case_id}/ownership"): Route(
        Scope.CASES_LEAD, call("POST", "/v1/cases/{w.cases[A][case_id]}/ownership",
                               json={"release": True}),
        s(409), case_answer("A", s(409))),
    ("mediation", "GET", "/v1/owned-cases"): Route(
        Scope.CASES_LEAD, call("GET", "/v1/owned-cases"), s(200)),
    ("mediation", "POST", "/v1/cases/{case_id}/merge"): Route(
        Scope.CASES_DISPATCH, _merge_into_itself(),
        s(422), lambda world, kind: (
            s(403) if kind == "department"
            else s(422) if sees(kind, world.cases["A"]) else s(404))),
    ("mediation", "POST", "/v1/cases/{case_id}/unmerge"): Route(
        Scope.CASES_DISPATCH, call("POST", "/v1/cases/{w.cases[A][case_id]}/unmerge",
                                   json={"reason": "matrix"}),
        s(409), lambda world, kind: (
            s(403) if kind == "department"
            else s(409) if sees(kind, world.cases["A"]) else s(404))),
    ("mediation", "GET", "/v1/stats"): Route(
        Scope.STATS_READ, call("GET", "/v1/stats", params={"group_by": "tier"}), s(200)),
    ("mediation", "GET", "/v1/audit"): Route(
        Scope.AUDIT_READ, call("GET", "/v1/audit", params={"limit": 5}), s(200)),
    # mediation: a person's data (nobody's number here: nothing found, nothing erased)
    ("mediation", "POST", "/v1/personal-data/export"): Route(
        Scope.PERSONAL_DATA_ADMIN, call("POST", "/v1/personal-data/export",
                                        json={"phone": "13000000000"}), s(200),
        only({"department": s(403), "jurisdiction": s(403), "channel": s(403)})),
    ("mediation", "POST", "/v1/personal-data/erase"): Route(
        Scope.PERSONAL_DATA_ADMIN, call("POST", "/v1/personal-data/erase", json={
            "phone": "13000000000", "legal_basis": "matrix"}), s(200),
        only({"department": s(403), "jurisdiction": s(403), "channel": s(403)})),
    # notify: limited keys see and manage only the subscriptions they made
    ("notify", "GET", "/v1/subscriptions"): Route(
        Scope.SUBSCRIPTIONS, call("GET", "/v1/subscriptions"), s(200)),
    ("notify", "POST", "/v1/subscriptions"): Route(
        Scope.SUBSCRIPTIONS, call("POST", "/v1/subscriptions", json={
            "name": "matrix", "url": UNREACHABLE_HOOK, "departments": ["judicial_office"]}),
        s(201), only({"department": s(201),
                      # they must name jurisdictions, channels within their own
                      "jurisdiction": s(403), "channel": s(403)})),
    ("notify", "GET", "/v1/subscriptions/{subscription_id}"): Route(
        Scope.SUBSCRIPTIONS, call("GET", "/v1/subscriptions/{w.subscription_id}"), s(200),
        lambda world, kind: s(404)),
    ("notify", "DELETE", "/v1/subscriptions/{subscription_id}"): Route(
        Scope.SUBSCRIPTIONS, _fresh_subscription("/v1/subscriptions/{id}"), s(204),
        lambda world, kind: s(404)),
    ("notify", "POST", "/v1/subscriptions/{subscription_id}/rotate-secret"): Route(
        Scope.SUBSCRIPTIONS, call("POST", "/v1/subscriptions/{w.subscription_id}/rotate-secret"),
        s(200), lambda world, kind: s(404)),
    # notify: a hotline integration's callback endpoint, always the calling key's own (a
    # limited key has the scope too: it registers its own); the admin sees and deletes any.
    ("notify", "PUT", "/v1/hotline/endpoint"): Route(
        Scope.HOTLINE_ENDPOINT, call("PUT", "/v1/hotline/endpoint",
                                     json={"url": UNREACHABLE_HOOK}), s(200, 201)),
    ("notify", "GET", "/v1/hotline/endpoint"): Route(
        Scope.HOTLINE_ENDPOINT, _own_endpoint("GET", "/v1/hotline/endpoint"), s(200)),
    ("notify", "POST", "/v1/hotline/endpoint/rotate-secret"): Route(
        Scope.HOTLINE_ENDPOINT, _own_endpoint("POST", "/v1/hotline/endpoint/rotate-secret"),
        s(200)),
    ("notify", "DELETE", "/v1/hotline/endpoint"): Route(
        Scope.HOTLINE_ENDPOINT, _own_endpoint("DELETE", "/v1/hotline/endpoint"), s(204)),
    ("notify", "GET", "/v1/hotline/endpoints"): Route(
        Scope.ADMIN, call("GET", "/v1/hotline/endpoints"), s(200)),
    ("notify", "DELETE", "/v1/hotline/endpoints/{key_id}"): Route(
        Scope.ADMIN, _hotline_endpoint_for_admin(), s(204)),
    ("notify", "GET", "/v1/deliveries"): Route(
        Scope.DELIVERIES_READ, call("GET", "/v1/deliveries", params={"limit": 5}), s(200)),
    ("notify", "GET", "/v1/deliveries/{delivery_id}"): Route(
        Scope.DELIVERIES_READ, call("GET", "/v1/deliveries/{w.delivery_id}"), s(200),
        lambda world, kind: s(404)),
    ("notify", "POST", "/v1/deliveries/{delivery_id}/redeliver"): Route(
        # 409 once an earlier key's redelivery is still pending
        Scope.SUBSCRIPTIONS, call("POST", "/v1/deliveries/{w.delivery_id}/redeliver"),
        s(202, 409), lambda world, kind: s(404)),
}


def _lead_answer(world: World, kind: str) -> Statuses:
    """A step only the lead department takes, sent on a stale version: 409 for a key that
    gets through, 403 for one that sees case A but does not lead it, 404 for one that does
    not see it."""
    case = world.cases["A"]
    if not sees(kind, case):
        return s(404)
    lead = case["lead_department"]
    return s(409) if lead in LIMITS[kind].get("departments", [lead]) else s(403)


def expected(route: Route, world: World, kind: str) -> Statuses:
    if route.scope is None:
        return route.allowed
    if kind in UNAUTHENTICATED:
        return s(403) if route.open311 else s(401)
    scopes = scopes_of(kind)
    if Scope.ADMIN.value not in scopes and not any(
            wanted.value in scopes for wanted in (route.scope, *route.also)):
        return s(403)
    if kind in LIMITS and route.limited is not None:
        return route.limited(world, kind)
    return route.allowed


async def _routes_in_openapi(world: World) -> set[tuple[str, str, str]]:
    found = set()
    for service, url in world.urls.items():
        spec = (await world.client.get(url + "/openapi.json")).json()
        for path, operations in spec["paths"].items():
            found |= {(service, method.upper(), path) for method in operations}
    return found


async def test_every_route_of_every_service_has_a_row_in_the_matrix(world: World) -> None:
    in_openapi = await _routes_in_openapi(world)
    missing = sorted(in_openapi - set(MATRIX))
    stale = sorted(set(MATRIX) - in_openapi)
    assert not missing, f"routes without a row in the access matrix: {missing}"
    assert not stale, f"rows for routes that no longer exist: {stale}"


async def test_every_route_answers_every_kind_of_key_as_the_matrix_says(world: World) -> None:
    failures = []
    for (service, method, path), route in MATRIX.items():
        for kind in KINDS:
            c = await route.build(world, kind)
            assert c.method == method
            response = await world.client.request(
                c.method, world.urls[service] + c.path, params=c.params, json=c.json,
                data=c.data, headers=world.headers(kind))
            want = expected(route, world, kind)
            if response.status_code not in want:
                failures.append(f"{service} {method} {path} with {kind}: "
                                f"{response.status_code} (want {sorted(want)}) "
                                f"{response.text[:160]}")
            elif response.status_code in (401, 403, 404) and not route.open311:
                body = response.json()
                if not (isinstance(body, dict) and body.get("error") and body.get("message")):
                    failures.append(f"{service} {method} {path} with {kind}: "
                                    f"{response.status_code} not in the error format")
                if response.status_code == 401 and "bearer" not in (
                        response.headers.get("www-authenticate", "").lower()):
                    failures.append(f"{service} {method} {path}: 401 without WWW-Authenticate")
    print(f"\naccess matrix: {len(MATRIX)} routes x {len(KINDS)} kinds of key = "
          f"{len(MATRIX) * len(KINDS)} requests")
    assert not failures, f"{len(failures)} answer(s) off the matrix:\n" + "\n".join(failures)


# --- what limited keys see -----------------------------------------------------------------

def test_the_seeded_cases_tell_the_limited_keys_apart(world: World) -> None:
    """Each limited key sees some of the three cases and not all of them, or the tests
    below would prove nothing."""
    for kind in LIMITS:
        seen = [name for name, case in world.cases.items() if sees(kind, case)]
        assert 0 < len(seen) < len(world.cases), (kind, seen)


@pytest.mark.parametrize("kind", list(LIMITS))
async def test_a_limited_key_lists_and_reads_only_cases_within_its_limits(
        world: World, kind: str) -> None:
    mediation = world.urls["mediation"]
    headers = world.headers(kind)
    for name, case in world.cases.items():
        listed = await world.client.get(mediation + "/v1/cases", headers=headers,
                                        params={"external_id": case["external_id"]})
        one = await world.client.get(f"{mediation}/v1/cases/{case['case_id']}",
                                     headers=headers)
        if sees(kind, case):
            assert [c["case_id"] for c in listed.json()["items"]] == [case["case_id"]], name
            assert one.status_code == 200, name
        else:
            assert listed.json()["items"] == [], name
            assert one.status_code == 404, name
            assert case["case_id"] not in one.text or "no case" in one.json()["message"]
    page = await world.client.get(mediation + "/v1/cases", headers=headers,
                                  params={"limit": 200})
    assert page.status_code == 200
    outside = [c["case_id"] for c in page.json()["items"] if not sees(kind, c)]
    assert not outside, f"{kind} key listed cases outside its limits: {outside}"


@pytest.mark.parametrize("kind", list(LIMITS))
async def test_a_limited_key_counts_only_cases_within_its_limits(world: World,
                                                                 kind: str) -> None:
    start, end = world.window
    window = {"received_from": start.isoformat(), "received_to": end.isoformat()}
    answers = {}
    for who in ("admin", kind):
        report = await world.client.get(world.urls["mediation"] + "/v1/stats",
                                        headers=world.headers(who), params=window)
        answers[who] = report.json()["total"]["received"]
    in_window = [c for c in world.cases.values()
                 if start <= datetime.fromisoformat(c["received_at"]) < end]
    assert answers["admin"] == len(in_window) == 2
    assert answers[kind] == sum(1 for c in in_window if sees(kind, c))


@pytest.mark.parametrize("kind", list(LIMITS))
async def test_a_limited_key_reads_the_audit_of_its_cases_only(world: World,
                                                               kind: str) -> None:
    for name, case in world.cases.items():
        entries = await world.client.get(world.urls["mediation"] + "/v1/audit",
                                         headers=world.headers(kind),
                                         params={"case_id": case["case_id"]})
        assert entries.status_code == 200
        if sees(kind, case):
            assert entries.json()["items"], f"{name}: the admin's reads were audited"
        else:
            assert entries.json()["items"] == [], name
    lists = await world.client.get(world.urls["mediation"] + "/v1/audit",
                                   headers=world.headers(kind), params={"action": "list"})
    assert lists.json()["items"] == [], "lists name no case: limited keys see none"


@pytest.mark.parametrize("kind", list(LIMITS))
async def test_a_limited_key_sees_only_its_own_subscriptions_and_their_deliveries(
        world: World, kind: str) -> None:
    notify = world.urls["notify"]
    headers = world.headers(kind)
    body: dict[str, Any] = {"name": f"own {kind}", "url": UNREACHABLE_HOOK, **LIMITS[kind]}
    made = await world.client.post(notify + "/v1/subscriptions", headers=headers, json=body)
    assert made.status_code == 201, made.text
    listed = await world.client.get(notify + "/v1/subscriptions", headers=headers)
    ids = {sub["id"] for sub in listed.json()}
    assert made.json()["id"] in ids
    assert world.subscription_id not in ids
    everyone = await world.client.get(notify + "/v1/subscriptions", headers=AUTH)
    assert {made.json()["id"], world.subscription_id} <= {x["id"] for x in everyone.json()}
    deliveries = await world.client.get(notify + "/v1/deliveries", headers=headers,
                                        params={"subscription_id": world.subscription_id})
    assert deliveries.json()["items"] == []


async def test_a_hotline_profile_key_does_what_a_hotline_needs_and_no_more(
        world: World) -> None:
    """Issue 23: the documented hotline key could not read its own orders' cases, the region
    codes it sends, or why a callback to it failed."""
    key, client = world.headers("hotline"), world.client
    intake, mediation = world.urls["intake"], world.urls["mediation"]
    run = uuid.uuid4().hex[:8]
    order = {**_native("hotline_12345", f"MX-HP-{run}"), "callback_url": UNREACHABLE_HOOK}
    posted = await client.post(intake + "/v1/intake/hotline_12345", headers=key, json=order)
    assert posted.status_code == 202, posted.text
    case_id = posted.json()["case_id"]
    grid = await client.post(intake + "/v1/intake/grid", headers=key,
                             json=_native("grid", f"MX-HP-G-{run}"))
    assert grid.status_code == 403
    towns = await client.get(world.urls["router"] + "/v1/jurisdictions", headers=key,
                             params={"level": "town"})
    assert towns.status_code == 200 and towns.json(), towns.text
    rules = await client.get(world.urls["router"] + "/v1/routing/rules", headers=key)
    assert rules.status_code == 403

    async def own_case() -> httpx.Response:
        return await client.get(f"{mediation}/v1/cases/{case_id}", headers=key)
    case = await eventually(own_case, lambda r: r.status_code == 200
                            and r.json()["status"] == "routed", within=60)
    grid_case = await client.get(f"{mediation}/v1/cases/{world.cases['C']['case_id']}",
                                 headers=key)
    assert grid_case.status_code == 404
    listed = await client.get(f"{mediation}/v1/cases", headers=key, params={"limit": 100})
    assert listed.status_code == 200, listed.text
    assert {c["channel"] for c in listed.json()["items"]} == {"hotline_12345"}
    # 退单: the callback to the hotline fails (nobody listens): the hotline reads why.
    await world.admin("POST", "mediation", f"/v1/cases/{case_id}/transitions", json={
        "to_status": "returned_to_source", "actor": "matrix", "reason": "不属于本中心受理范围",
        "expected_version": case.json()["version"]})

    async def callbacks() -> list[dict[str, Any]]:
        answer = await client.get(world.urls["notify"] + "/v1/deliveries", headers=key,
                                  params={"case_id": case_id})
        assert answer.status_code == 200, answer.text
        return list(answer.json()["items"])
    [callback] = await eventually(callbacks, lambda items: len(items) == 1, within=60)
    assert callback["target"] == "hotline_feedback"
    detail = await client.get(world.urls["notify"] + f"/v1/deliveries/{callback['id']}",
                              headers=key)
    assert detail.status_code == 200 and detail.json()["attempt_log"] is not None
    # Not a department's webhook deliveries, nor another channel's.
    others = await client.get(world.urls["notify"] + "/v1/deliveries", headers=key,
                              params={"limit": 500})
    seen = others.json()["items"]
    assert case_id in {d["case_id"] for d in seen}
    assert {d["target"] for d in seen} == {"hotline_feedback"}  # 12345 callbacks only
    seeded = await client.get(world.urls["notify"] + f"/v1/deliveries/{world.delivery_id}",
                              headers=key)
    assert seeded.status_code == 404


async def test_a_channel_limited_key_subscribes_only_within_its_channels(world: World) -> None:
    """Issue 22: a key limited to one channel with subscriptions:manage subscribed to every
    case's events and received other channels' cases (channel, external id, actor...)."""
    notify = world.urls["notify"]
    headers = world.headers("channel")
    for outside in ({}, {"channels": ["hotline_12345"]}, {"channels": ["grid", "walk_in"]}):
        refused = await world.client.post(notify + "/v1/subscriptions", headers=headers, json={
            "name": "beyond", "url": UNREACHABLE_HOOK, "kinds": ["routed", "lifecycle"],
            **outside})
        assert refused.status_code == 403, refused.text
        assert [f["field"] for f in refused.json()["fields"]] == ["channels"]
    made = await world.client.post(notify + "/v1/subscriptions", headers=headers, json={
        "name": "grid only", "url": UNREACHABLE_HOOK, "kinds": ["routed", "lifecycle"],
        "channels": ["grid"]})
    assert made.status_code == 201 and made.json()["channels"] == ["grid"]
    # The admin's catch-all subscription tells when notify has handled both cases' events.
    catch_all = await world.admin("POST", "notify", "/v1/subscriptions", json={
        "name": "catch-all", "url": UNREACHABLE_HOOK, "kinds": ["routed"]})
    run = uuid.uuid4().hex[:8]
    hotline = await world.admin("POST", "intake", "/v1/intake/hotline_12345",
                                json=_native("hotline_12345", f"MX-CH-H-{run}"))
    grid = await world.admin("POST", "intake", "/v1/intake/grid",
                             json=_native("grid", f"MX-CH-G-{run}"))

    async def delivered(subscription: str, key: dict[str, str]) -> set[str]:
        answer = await world.client.get(notify + "/v1/deliveries", headers=key, params={
            "subscription_id": subscription, "limit": 100})
        return {d["case_id"] for d in answer.json()["items"]}

    both = {hotline.json()["case_id"], grid.json()["case_id"]}
    await eventually(lambda: delivered(catch_all.json()["id"], AUTH), both.issubset, within=60)
    seen = await eventually(lambda: delivered(made.json()["id"], headers),
                            lambda ids: grid.json()["case_id"] in ids, within=30)
    assert hotline.json()["case_id"] not in seen
    everything = await world.client.get(notify + "/v1/deliveries", headers=AUTH, params={
        "case_id": hotline.json()["case_id"], "limit": 100})
    assert made.json()["id"] not in {d["subscription_id"] for d in everything.json()["items"]}


async def test_a_cooperating_department_reads_a_case_but_only_the_lead_moves_it(
        world: World) -> None:
    mediation = world.urls["mediation"]
    headers = world.headers("department")
    department = LIMITS["department"]["departments"][0]
    cooperating = next((c for c in world.cases.values()
                        if department in c["cooperating_departments"]
                        and c["lead_department"] != department), None)
    lead = next(c for c in world.cases.values() if c["lead_department"] == department)
    if cooperating is not None:
        read = await world.client.get(f"{mediation}/v1/cases/{cooperating['case_id']}",
                                      headers=headers)
        assert read.status_code == 200
        moved = await world.client.post(
            f"{mediation}/v1/cases/{cooperating['case_id']}/transitions", headers=headers,
            json={"to_status": "accepted", "actor": "合作部门", "expected_version":
                  read.json()["version"]})
        assert moved.status_code == 403, moved.text
    current = await world.client.get(f"{mediation}/v1/cases/{lead['case_id']}",
                                     headers=headers)
    moved = await world.client.post(
        f"{mediation}/v1/cases/{lead['case_id']}/transitions", headers=headers,
        json={"to_status": "accepted", "actor": "司法所 王调解员",
              "expected_version": current.json()["version"]})
    assert moved.status_code == 200, moved.text
    audit = await world.client.get(mediation + "/v1/audit", headers=AUTH, params={
        "case_id": lead["case_id"], "action": "transition"})
    [entry] = audit.json()["items"]
    assert entry["key_id"] == world.key_ids["department"]
    assert entry["detail"]["to_status"] == ["accepted"]
