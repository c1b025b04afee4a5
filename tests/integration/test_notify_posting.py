"""The sender's webhook client (services/notify/posting.py) against a real HTTP server on
loopback: what a receiver gets, and what each kind of answer becomes in the delivery log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from fastapi import FastAPI, Request, Response

from services.notify.domain import DeliveryFailed
from services.notify.posting import MAX_EXCERPT_CHARS, WebhookPoster
from tests.infra import free_port, serve

pytestmark = pytest.mark.integration

BODY = b'{"type":"case.received","data":{"case_id":"C1"}}'
HEADERS = {"content-type": "application/json", "webhook-id": "msg_1",
           "webhook-timestamp": "1700000000", "webhook-signature": "v1,abc",
           "user-agent": "fengqiao-notify/1"}


@dataclass
class Receiver:
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/ok")
        async def ok(request: Request) -> Response:
            self.got.append((dict(request.headers), await request.body()))
            return Response(status_code=204)

        @app.post("/moved")
        async def moved() -> Response:
            return Response(status_code=302, headers={"location": "/ok"})

        @app.post("/refused")
        async def refused() -> Response:
            # A large error page, with a phone number and control characters in it.
            text = "bad signature\r\n\tfor 13912345678 " + "x" * 20_000
            return Response(text, status_code=401)

        @app.post("/broken")
        async def broken() -> Response:
            return Response("stack trace", status_code=503)

        @app.post("/slow")
        async def slow() -> Response:
            await asyncio.sleep(2)
            return Response(status_code=204)

        return app


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    receiver = Receiver()
    async with serve(receiver.app()) as url:
        yield receiver, url


async def test_the_body_and_headers_arrive_as_signed(receiver: tuple[Receiver, str]) -> None:
    got, url = receiver
    async with WebhookPoster(5.0, 4) as poster:
        assert await poster.post(url + "/ok", BODY, HEADERS) == 204
    headers, body = got.got[-1]
    assert body == BODY
    assert {k: headers[k] for k in HEADERS} == HEADERS


async def test_a_redirect_is_not_followed(receiver: tuple[Receiver, str]) -> None:
    got, url = receiver
    before = len(got.got)
    async with WebhookPoster(5.0, 4) as poster:
        with pytest.raises(DeliveryFailed) as failed:
            await poster.post(url + "/moved", BODY, HEADERS)
    assert failed.value.reason == "HTTP 302" and failed.value.status_code == 302
    assert len(got.got) == before


async def test_a_refusal_keeps_a_scrubbed_excerpt_of_what_the_receiver_said(
        receiver: tuple[Receiver, str]) -> None:
    _, url = receiver
    async with WebhookPoster(5.0, 4) as poster:
        with pytest.raises(DeliveryFailed) as failed:
            await poster.post(url + "/refused", BODY, HEADERS)
    reason = failed.value.reason
    assert failed.value.status_code == 401 and not failed.value.permanent
    assert reason.startswith("HTTP 401: bad signature for ")
    assert "13912345678" not in reason and "\r" not in reason
    assert len(reason) <= len("HTTP 401: ") + MAX_EXCERPT_CHARS


async def test_a_server_error_says_only_its_status(receiver: tuple[Receiver, str]) -> None:
    _, url = receiver
    async with WebhookPoster(5.0, 4) as poster:
        with pytest.raises(DeliveryFailed) as failed:
            await poster.post(url + "/broken", BODY, HEADERS)
    assert failed.value.reason == "HTTP 503" and failed.value.status_code == 503


async def test_a_slow_receiver_times_out(receiver: tuple[Receiver, str]) -> None:
    _, url = receiver
    async with WebhookPoster(0.3, 4) as poster:
        with pytest.raises((DeliveryFailed, TimeoutError)):
            await poster.post(url + "/slow", BODY, HEADERS)


async def test_nobody_listening_is_a_failure_to_retry() -> None:
    async with WebhookPoster(2.0, 4) as poster:
        with pytest.raises(DeliveryFailed) as failed:
            await poster.post(f"http://127.0.0.1:{free_port()}/ok", BODY, HEADERS)
    assert not failed.value.permanent and failed.value.status_code is None
