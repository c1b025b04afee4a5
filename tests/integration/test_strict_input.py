"""Hostile and careless input gets a 4xx in the error format, never a 5xx, and no request is
parsed before its key is known (issue 22's probe: each case here broke or slipped through)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from services.intake.main import create as create_intake
from services.mediation.main import create as create_mediation
from services.notify.main import create as create_notify
from services.router.main import create as create_router
from tests.infra import AUTH, Broker, serve, service_settings

pytestmark = pytest.mark.integration

SERVICES = {"intake": create_intake, "router": create_router, "mediation": create_mediation,
            "notify": create_notify}


@pytest.fixture(scope="module")
async def urls(broker: Broker, database_url: str, run_dir: Path
               ) -> AsyncIterator[dict[str, str]]:
    async with AsyncExitStack() as stack:
        started = {}
        for name, create in SERVICES.items():
            settings = service_settings(name, broker.bootstrap, database_url, run_dir)
            started[name] = await stack.enter_async_context(serve(create(settings)))
        yield started


def preview(**fields: object) -> dict[str, object]:
    return {"channel": "hotline_12345", "text": "邻居装修噪音扰民", **fields}


def fields_of(response: httpx.Response) -> list[str]:
    return [f["field"] for f in response.json().get("fields", [])]


async def test_a_time_at_the_edge_of_the_calendar_is_422_not_500(urls: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=urls["router"], headers=AUTH) as client:
        for field in ("received_at", "occurred_at", "deadline"):
            answer = await client.post("/v1/routing/preview", json=preview(
                **{field: "9999-12-31T23:59:59-23:59"}))
            assert answer.status_code == 422, answer.text
            assert field in fields_of(answer)


@pytest.mark.parametrize("raw", ["Infinity", "-Infinity", "NaN", "1e999"])
async def test_non_finite_numbers_are_422(urls: dict[str, str], raw: str) -> None:
    headers = {**AUTH, "content-type": "application/json"}
    async with httpx.AsyncClient(headers=headers) as client:
        amount = await client.post(
            urls["router"] + "/v1/routing/preview",
            content=f'{{"channel": "court", "text": "欠款纠纷", "amount": {raw}}}')
        agreement = await client.post(
            urls["mediation"] + "/v1/cases/FQ20261120-ABCDEFGHJKLMNP/transitions",
            content='{"to_status": "resolved", "actor": "m", "expected_version": 1, '
                    f'"data": {{"agreement": "分期还款", "agreement_amount": {raw}}}}}')
    for answer in (amount, agreement):
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == "validation_failed"
    assert "finite" in amount.json()["fields"][0]["reason"]


async def test_an_infinite_amount_written_as_a_string_is_422(urls: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=urls["router"], headers=AUTH) as client:
        answer = await client.post("/v1/routing/preview", json=preview(amount="Infinity"))
    assert answer.status_code == 422 and "amount" in fields_of(answer)


async def test_a_70000_character_webhook_url_is_422(urls: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=urls["notify"], headers=AUTH) as client:
        for url in ("https://" + "a" * 70_000 + ".example/hook",
                    "https://hooks.example/" + "a" * 70_000):
            answer = await client.post("/v1/subscriptions", json={"name": "long", "url": url})
            assert answer.status_code == 422, answer.text[:200]
            assert fields_of(answer) == ["url"]


async def test_a_long_preview_string_is_422(urls: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=urls["router"], headers=AUTH) as client:
        answer = await client.post("/v1/routing/preview",
                                   json=preview(address="路" * 70_000))
    assert answer.status_code == 422 and "address" in fields_of(answer)


async def test_bodies_are_utf8_only(urls: dict[str, str]) -> None:
    order = '{"order_no": "U16", "content": "噪音", "received_at": "2026-11-20T08:00:00+08:00"}'
    async with httpx.AsyncClient(base_url=urls["intake"], headers=AUTH) as client:
        utf16 = await client.post("/v1/intake/hotline_12345", content=order.encode("utf-16"),
                                  headers={"content-type": "application/json"})
        declared = await client.post("/v1/intake/hotline_12345",
                                     content=order.encode("utf-16"),
                                     headers={"content-type": "application/json; charset=utf-16"})
    assert utf16.status_code == 422 and "UTF-8" in utf16.json()["fields"][0]["reason"]
    assert declared.status_code == 415 and declared.json()["error"] == "unsupported_media_type"


@pytest.mark.parametrize("service,path", [
    ("intake", "/v1/intake/hotline_12345"), ("router", "/v1/routing/preview"),
    ("notify", "/v1/subscriptions"),
    ("mediation", "/v1/cases/FQ20261120-ABCDEFGHJKLMNP/transitions")])
async def test_without_a_valid_key_the_body_is_not_read(urls: dict[str, str], service: str,
                                                        path: str) -> None:
    """No key, or an unknown one: 401 whatever the body, which is never parsed."""
    async with httpx.AsyncClient(base_url=urls[service]) as client:
        for headers in ({}, {"Authorization": "Bearer fq_unknown"}):
            answer = await client.post(path, content=b"{not json",
                                       headers={**headers, "content-type": "application/json"})
            assert answer.status_code == 401, answer.text
            assert answer.json()["error"] == "unauthenticated"
            assert answer.headers["www-authenticate"] == "Bearer"


async def test_with_a_valid_key_a_malformed_body_is_still_422(
        urls: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=urls["router"], headers=AUTH) as client:
        answer = await client.post("/v1/routing/preview", content=b"{not json",
                                   headers={"content-type": "application/json"})
    assert answer.status_code == 422 and fields_of(answer) == ["<body>"]


async def test_an_error_never_repeats_a_personal_number(urls: dict[str, str]) -> None:
    async with httpx.AsyncClient(headers=AUTH) as client:
        answers = [
            await client.get(urls["intake"] + "/open311/v2/requests/139-1234-5678.json"),
            await client.get(urls["mediation"] + "/v1/cases/13912345678"),
            await client.get(urls["intake"] + "/v1/intake/hotline_12345/reports/13912345678"),
            await client.post(urls["intake"] + "/v1/intake/hotline_12345", json={
                "order_no": "E1", "content": "x", "received_at": "2026-11-20T08:00:00+08:00",
                "caller_phone": "1391234567", "13912345678": "an unknown field"}),
        ]
    for answer in answers:
        assert 400 <= answer.status_code < 500, answer.text
        assert "1234567" not in answer.text.replace("-", ""), answer.text
