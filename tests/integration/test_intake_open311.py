"""Open311 GeoReport v2 over real HTTP, checked against the spec's field lists: services,
filing a request (form-encoded, api_key), reading requests back with the spec's filters and
only their public fields, tokens, errors as the spec's list, and status from the lifecycle."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from contracts.enums import Channel, Department, Status
from contracts.events import CaseLifecycle, CaseLifecycleEvent
from contracts.topics import CASE_LIFECYCLE
from kit.bus import encode
from tests.infra import AUTH, DEV_KEY, Broker
from tests.integration.test_intake import intake, intake_app, order, reported_events

pytestmark = pytest.mark.integration
# The module-scoped fixtures of test_intake, re-exported: this module gets its own server.
__all__ = ["intake", "intake_app"]

# The spec's fields (https://wiki.open311.org/GeoReport_v2).
SERVICE_FIELDS = {"service_code", "service_name", "description", "metadata", "type",
                  "keywords", "group"}
REQUEST_FIELDS = {"service_request_id", "status", "status_notes", "service_name",
                  "service_code", "description", "agency_responsible", "service_notice",
                  "requested_datetime", "updated_datetime", "expected_datetime", "address",
                  "address_id", "zipcode", "lat", "long", "media_url"}
PRIVATE = ["张", "13912345678", "zhang@example.cn", "device-42", "account-7"]
V2 = "/open311/v2"


def form(**changes: str) -> dict[str, str]:
    return {"api_key": DEV_KEY, "service_code": "neighbor", "lat": "29.7102",
            "long": "120.2411", "address_string": "城关街道江滨社区3幢",
            "description": "楼上深夜噪音扰民，请回电13912345678。", "first_name": "三",
            "last_name": "张", "phone": "13912345678", "email": "zhang@example.cn",
            "device_id": "device-42", "account_id": "account-7",
            "media_url": "https://img.example.cn/noise.jpg", **changes}


def assert_error_list(response: httpx.Response, status: int) -> list[str]:
    """The spec's error format: a JSON list of {code, description}; returns descriptions."""
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, list) and body
    assert all(set(e) == {"code", "description"} and e["code"] == status for e in body)
    return [e["description"] for e in body]


async def file(client: httpx.AsyncClient, **changes: str) -> dict[str, Any]:
    created = await client.post(f"{V2}/requests.json", data=form(**changes))
    assert created.status_code == 201, created.text
    body = created.json()
    assert isinstance(body, list) and len(body) == 1
    return dict(body[0])


async def test_services_are_the_dispute_categories_with_the_spec_fields(intake: str) -> None:
    async with httpx.AsyncClient(base_url=intake) as client:
        services = await client.get(f"{V2}/services.json")
        definition = await client.get(f"{V2}/services/labor.json")
        unknown = await client.get(f"{V2}/services/potholes.json")
        html = await client.get(f"{V2}/services.html")
    assert services.status_code == 200
    listed = services.json()
    assert len(listed) == 15 and all(set(s) == SERVICE_FIELDS for s in listed)
    by_code = {s["service_code"]: s for s in listed}
    assert by_code["labor"]["service_name"] == "劳动争议 / 欠薪 Labour disputes and unpaid wages"
    assert by_code["labor"]["metadata"] is False and by_code["labor"]["type"] == "realtime"
    assert definition.json() == {"service_code": "labor", "attributes": []}
    assert "potholes" in assert_error_list(unknown, 404)[0]
    # Any format but XML and JSON is the spec's 404, in XML (tests/integration/
    # test_intake_open311_xml.py has XML itself).
    assert html.status_code == 404 and html.headers["content-type"].startswith("text/xml")
    assert b"unknown format '.html'" in html.content


async def test_a_filed_request_becomes_a_case_and_reads_back_with_public_fields_only(
        intake: str, broker: Broker) -> None:
    async with httpx.AsyncClient(base_url=intake) as client:
        created = await file(client)
        request_id = created["service_request_id"]
        one = await client.get(f"{V2}/requests/{request_id}.json")
        by_token = await client.get(f"{V2}/tokens/{created['token']}.json")
    assert set(created) == {"service_request_id", "token", "service_notice", "account_id"}
    assert created["account_id"] == "account-7"
    assert one.status_code == 200 and len(one.json()) == 1
    shown = one.json()[0]
    assert set(shown) == REQUEST_FIELDS
    assert (shown["status"], shown["service_code"], shown["lat"], shown["long"]) == (
        "open", "neighbor", 29.7102, 120.2411)
    assert shown["service_name"] == "邻里纠纷 Neighbour disputes"
    assert shown["description"] == "楼上深夜噪音扰民，请回电139****5678。"
    assert shown["address"] == "城关街道江滨社区3幢"
    assert shown["media_url"] == "https://img.example.cn/noise.jpg"
    assert datetime.fromisoformat(shown["requested_datetime"]).tzinfo is not None
    assert not [p for p in PRIVATE if p in one.text]
    assert by_token.json() == [{"service_request_id": request_id, "token": created["token"]}]

    event = (await reported_events(broker.bootstrap, [request_id]))[request_id][0]["data"]
    assert (event["channel"], event["external_id"], event["channel_category"]) == (
        "open311", request_id, "邻里纠纷")
    assert event["reporter"]["name"] == "张三"
    assert event["reporter"]["phone_masked"] == "139****5678"
    assert event["location"] == {"lat": 29.7102, "lon": 120.2411}
    assert "13912345678" not in str(event) and "zhang@example.cn" not in str(event)


async def test_filing_errors_are_the_spec_list(intake_app: tuple[FastAPI, str],
                                               unique: str) -> None:
    app, url = intake_app
    _, reader = await app.state.keys.create(f"reader-{unique}", ["cases:read"])
    _, police_only = await app.state.keys.create(f"police-{unique}", ["intake:write"],
                                                 channels=["police"])
    async with httpx.AsyncClient(base_url=url) as client:
        no_key = await client.post(f"{V2}/requests.json", data=form(api_key=""))
        bad_key = await client.post(f"{V2}/requests.json", data=form(api_key="fq_nope"))
        read_only = await client.post(f"{V2}/requests.json", data=form(api_key=reader))
        other_channel = await client.post(f"{V2}/requests.json", data=form(api_key=police_only))
        invalid = await client.post(f"{V2}/requests.json",
                                    data=form(lat="north", description="", email="x@"))
        nowhere = await client.post(f"{V2}/requests.json",
                                    data={k: v for k, v in form().items()
                                          if k not in ("lat", "long", "address_string")})
        unknown_service = await client.post(f"{V2}/requests.json",
                                            data=form(service_code="potholes"))
        as_json = await client.post(f"{V2}/requests.json", json=form())
        as_html = await client.post(f"{V2}/requests.html", data=form())
        not_utf8 = await client.post(f"{V2}/requests.json", content=b"description=\xff",
                                     headers={"content-type":
                                              "application/x-www-form-urlencoded"})
        unknown_path = await client.get(f"{V2}/discovery/else.json")
        nul_id = await client.get(f"{V2}/requests/a%00b.json")
        nul_token = await client.get(f"{V2}/tokens/a%00b.json")
        nul_ids = await client.get(f"{V2}/requests.json", params={"service_request_id": "a\x00"})
        far_future = await client.get(f"{V2}/requests.json",
                                      params={"start_date": "9999-12-31T00:00:00Z"})
        nul_text = await client.post(f"{V2}/requests.json", data=form(description="噪音\x00"))
    for refused in (no_key, bad_key, read_only, other_channel):
        assert_error_list(refused, 403)
    problems = assert_error_list(invalid, 400)
    assert len(problems) == 3
    assert {p.split(":")[0] for p in problems} == {"lat", "description", "email"}
    assert "location is required" in assert_error_list(nowhere, 400)[0]
    assert "potholes" in assert_error_list(unknown_service, 400)[0]
    assert "form-urlencoded" in assert_error_list(as_json, 400)[0]
    assert as_html.status_code == 404 and b"<errors><error><code>404</code>" in as_html.content
    assert assert_error_list(not_utf8, 400)
    assert assert_error_list(unknown_path, 404)
    assert assert_error_list(nul_id, 404) and assert_error_list(nul_token, 404)
    assert assert_error_list(nul_ids, 400) and assert_error_list(far_future, 400)
    assert assert_error_list(nul_text, 400)[0].startswith("description")


async def test_reads_filter_as_the_spec_says_and_show_only_open311_requests(
        intake: str, unique: str) -> None:
    async with httpx.AsyncClient(base_url=intake) as client:
        neighbor = await file(client, description=f"噪音{unique}")
        labor = await file(client, service_code="labor", description=f"欠薪{unique}")
        hotline = await client.post("/v1/intake/hotline_12345", json=order(f"O{unique}"),
                                    headers=AUTH)
        hotline_id = hotline.json()["case_id"]
        both_ids = f"{neighbor['service_request_id']},{labor['service_request_id']},{hotline_id}"
        by_ids = await client.get(f"{V2}/requests.json",
                                  params={"service_request_id": both_ids})
        labor_only = await client.get(f"{V2}/requests.json", params={"service_code": "labor"})
        open_ones = await client.get(f"{V2}/requests.json", params={"status": "open,closed"})
        closed_ones = await client.get(f"{V2}/requests.json", params={"status": "closed"})
        now = datetime.now(UTC)
        last_hour = await client.get(f"{V2}/requests.json", params={
            "start_date": (now - timedelta(hours=1)).isoformat(),
            "end_date": (now + timedelta(minutes=1)).isoformat()})
        last_year = await client.get(f"{V2}/requests.json", params={
            "start_date": "2025-01-01T00:00:00Z", "end_date": "2025-03-01T00:00:00Z"})
        hotline_case = await client.get(f"{V2}/requests/{hotline_id}.json")
        too_wide = await client.get(f"{V2}/requests.json", params={
            "start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"})
        bad = await client.get(f"{V2}/requests.json", params={"status": "pending",
                                                               "end_date": "2026-11-01"})

    def ids(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        assert all(set(r) == REQUEST_FIELDS for r in response.json())
        return [r["service_request_id"] for r in response.json()]

    mine = {neighbor["service_request_id"], labor["service_request_id"]}
    assert set(ids(by_ids)) == mine
    assert labor["service_request_id"] in ids(labor_only)
    assert neighbor["service_request_id"] not in ids(labor_only)
    assert mine <= set(ids(open_ones))
    assert not mine & set(ids(closed_ones))
    newest_first = ids(last_hour)
    assert newest_first.index(labor["service_request_id"]) < newest_first.index(
        neighbor["service_request_id"])
    assert hotline_id not in newest_first
    assert ids(last_year) == []
    assert_error_list(hotline_case, 404)
    assert "90 days" in assert_error_list(too_wide, 400)[0]
    assert len(assert_error_list(bad, 400)) == 2


async def test_reads_need_a_key_when_not_public(intake_app: tuple[FastAPI, str],
                                                unique: str) -> None:
    app, url = intake_app
    _, routing_key = await app.state.keys.create(f"routing-{unique}", ["routing:read"])
    settings = app.state.runtime.settings
    async with httpx.AsyncClient(base_url=url) as client:
        created = await file(client)
        path = f"{V2}/requests/{created['service_request_id']}.json"
        settings.open311_public_read = False
        try:
            anonymous = await client.get(path)
            token_anonymous = await client.get(f"{V2}/tokens/{created['token']}.json")
            wrong_scope = await client.get(path, params={"api_key": routing_key})
            with_query_key = await client.get(path, params={"api_key": DEV_KEY})
            with_bearer = await client.get(path, headers=AUTH)
            services = await client.get(f"{V2}/services.json")
        finally:
            settings.open311_public_read = True
    assert_error_list(anonymous, 403)
    assert_error_list(token_anonymous, 403)
    assert_error_list(wrong_scope, 403)
    assert with_query_key.status_code == 200 and with_bearer.status_code == 200
    assert services.status_code == 200  # the catalogue stays public


async def test_the_status_follows_the_case_lifecycle_and_never_goes_back(
        intake: str, broker: Broker) -> None:
    async with httpx.AsyncClient(base_url=intake) as client:
        request_id = (await file(client))["service_request_id"]
        marker_id = (await file(client))["service_request_id"]

        def step(case_id: str, version: int, to: Status) -> bytes:
            return encode(CaseLifecycleEvent.wrap(CaseLifecycle(
                case_id=case_id, version=version, from_status=None, to_status=to,
                actor="mediator-1", reason="双方达成协议 13912345678", at=datetime.now(UTC),
                channel=Channel.OPEN311, external_id=case_id,
                lead_department=Department.JUDICIAL_OFFICE), source="mediation",
                subject=case_id))

        # One key, so one partition and this order: closed at version 6, then a late
        # version 4, then the marker, whose closing proves the late event was handled.
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            for case_id, version, to in ((request_id, 6, Status.CLOSED),
                                         (request_id, 4, Status.IN_MEDIATION),
                                         (marker_id, 2, Status.CLOSED)):
                await producer.send_and_wait(CASE_LIFECYCLE, step(case_id, version, to),
                                             key=request_id.encode())
        finally:
            await producer.stop()
        marker: dict[str, Any] = {}
        for _ in range(300):
            marker = (await client.get(f"{V2}/requests/{marker_id}.json")).json()[0]
            if marker["status"] == "closed":
                break
            await asyncio.sleep(0.1)
        shown = (await client.get(f"{V2}/requests/{request_id}.json")).json()[0]
    assert marker["status"] == "closed"
    assert (shown["status"], shown["status_notes"], shown["agency_responsible"]) == (
        "closed", "已办结 Closed", "judicial_office")
    assert datetime.fromisoformat(shown["updated_datetime"]) >= datetime.fromisoformat(
        shown["requested_datetime"])
    assert "13912345678" not in str(shown)
