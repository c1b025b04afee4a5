"""Notify's SMS gateways and intake contact directory client, against real HTTP servers on
loopback and a real file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from services.notify.domain import DeliveryFailed, SmsMessage
from services.notify.gateways import HttpContactDirectory, HttpSmsGateway, LogFileSmsGateway
from tests.infra import free_port, serve

pytestmark = pytest.mark.integration

PHONE = "13912345678"
KEY = "fq_directory_key"


@dataclass
class Provider:
    posts: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    status: int = 200

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/send")
        async def send(request: Request) -> Response:
            self.posts.append((dict(request.headers), orjson.loads(await request.body())))
            return Response(status_code=self.status)

        @app.get("/v1/intake/cases/{case_id}/contact")
        async def contact(case_id: str, request: Request) -> Response:
            if request.headers.get("authorization") != f"Bearer {KEY}":
                return JSONResponse({"error": "forbidden"}, status_code=403)
            if case_id == "FQ-NONE":
                return JSONResponse({"error": "not_found"}, status_code=404)
            if case_id == "FQ-ODD":
                return JSONResponse({"unexpected": True})
            return JSONResponse({"case_id": case_id, "phone": PHONE})

        return app


@pytest.fixture(scope="module")
async def provider() -> AsyncIterator[tuple[Provider, str]]:
    p = Provider()
    async with serve(p.app()) as url:
        yield p, url


def message(reference: str = "msg_1") -> SmsMessage:
    return SmsMessage(phone=PHONE, text="【枫桥】您反映的事项已受理，案件编号FQ1。",
                      template="received", reference=reference)


async def test_the_log_file_gateway_writes_the_message_with_the_number_masked(
        tmp_path: Path) -> None:
    path = tmp_path / "var" / "sms.log"
    gateway = LogFileSmsGateway(path)
    await gateway.send(message("msg_a"))
    await gateway.send(message("msg_b"))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert all("139****5678" in line and PHONE not in line for line in lines)
    assert lines[0].split("\t")[2:4] == ["msg_a", "received"]
    assert lines[1].endswith("案件编号FQ1。")


async def test_the_http_gateway_posts_phone_text_template_and_reference_with_its_token(
        provider: tuple[Provider, str]) -> None:
    p, url = provider
    gateway = HttpSmsGateway(url + "/send", token="sms-token", timeout=2)
    try:
        await gateway.send(message("msg_c"))
        p.status = 500
        with pytest.raises(DeliveryFailed) as failed:
            await gateway.send(message("msg_d"))
    finally:
        p.status = 200
        await gateway.aclose()
    headers, body = p.posts[0]
    assert headers["authorization"] == "Bearer sms-token"
    assert body == {"phone": PHONE, "text": message().text, "template": "received",
                    "reference": "msg_c"}
    assert failed.value.status_code == 500 and not failed.value.permanent
    assert PHONE not in failed.value.reason


async def test_the_contact_directory_answers_a_phone_none_or_a_retryable_failure(
        provider: tuple[Provider, str]) -> None:
    _, url = provider
    directory = HttpContactDirectory(url, KEY, timeout=2)
    wrong_key = HttpContactDirectory(url, "fq_other", timeout=2)
    nowhere = HttpContactDirectory(f"http://127.0.0.1:{free_port()}", KEY, timeout=2)
    try:
        assert await directory.contact_phone("FQ20261123-0001") == PHONE
        assert await directory.contact_phone("FQ-NONE") is None
        failures = []
        for client, case_id in ((wrong_key, "FQ1"), (nowhere, "FQ1"), (directory, "FQ-ODD")):
            with pytest.raises(DeliveryFailed) as failed:
                await client.contact_phone(case_id)
            failures.append(failed.value)
    finally:
        for client in (directory, wrong_key, nowhere):
            await client.aclose()
    assert [f.reason for f in failures] == [
        "contact directory answered HTTP 403", "contact directory: ConnectError",
        "contact directory answered with an unexpected body"]
    assert not any(f.permanent for f in failures)
