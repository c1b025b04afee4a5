"""Request body limits: a body over the size limit is refused with 413 before it is read
into memory, whether or not the client declared its length; a JSON body must be UTF-8
with finite numbers (422 otherwise)."""

from __future__ import annotations

import json

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kit.errors import ErrorBody, FieldError
from kit.privacy import scrub_values


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = refused = False

        async def counting_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Answer now: the framework would turn the exception into its own 400.
                    if not started and not refused:
                        refused = True
                        await self._refuse(send)
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent; drop whatever the app answers after it
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            pass

    async def _refuse(self, send: Send) -> None:
        body = ErrorBody(error="payload_too_large",
                         message=f"the request body is over {self.max_bytes} bytes"
                         ).model_dump_json().encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class StrictJsonBody:
    """A JSON body must be UTF-8 and hold finite numbers only, or the answer is 422.

    FastAPI parses with the standard library, which takes NaN, Infinity and 1e999 (a float
    overflowing to infinity) and guesses UTF-16 or UTF-32: an agreement_amount of Infinity
    was stored as null with a 200. The body is parsed once more here with orjson, which
    refuses all of these, then handed on unchanged. Bodies that are not JSON, and routes
    without a JSON body parameter (Open311's forms), pass through; a declared charset
    other than UTF-8 is 415."""

    BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in self.BODYLESS:
            await self.app(scope, receive, send)
            return
        content_type = dict(scope.get("headers") or []).get(b"content-type", b"").decode(
            "latin-1").lower()
        media_type, _, parameters = content_type.partition(";")
        media_type = media_type.strip()
        if media_type and media_type != "application/json" and not media_type.endswith("+json"):
            await self.app(scope, receive, send)
            return
        charset = _charset(parameters)
        if charset not in (None, "utf-8", "utf8"):
            await _answer(send, 415, ErrorBody(
                error="unsupported_media_type",
                message="JSON bodies are UTF-8 only: send 'Content-Type: application/json'"))
            return
        # Read and checked when the route first asks for the body, not before routing: a
        # route that needs a key has it checked first (kit.auth.KeyBeforeBody).
        read = refused = False

        async def checked_receive() -> Message:
            nonlocal read, refused
            if read or getattr(scope.get("route"), "body_field", None) is None:
                # Routes that read their body themselves (Open311's forms) check it their way.
                return await receive()
            read = True
            chunks: list[bytes] = []
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return message
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            problem = _json_problem(body) if body.strip() else None
            if problem:
                refused = True
                await _answer(send, 422, ErrorBody(
                    error="validation_failed", message="the body is not valid JSON",
                    fields=[FieldError(field="<body>", reason=problem)]))
                raise BodyRefused  # FastAPI turns it into a 400, which is dropped below
            return {"type": "http.request", "body": body, "more_body": False}

        async def tracking_send(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, checked_receive, tracking_send)
        except BodyRefused:
            pass


class BodyRefused(Exception):
    pass


def _charset(parameters: str) -> str | None:
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip() == "charset":
            return value.strip().strip('"')
    return None


def _json_problem(body: bytes) -> str | None:
    try:
        orjson.loads(body)
        return None
    except orjson.JSONDecodeError as exc:
        reason = str(exc)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not valid UTF-8: JSON bodies are UTF-8 only"
    try:
        json.loads(body)
    except ValueError:
        return "the body is not valid JSON: " + reason
    return "numbers must be finite: NaN, Infinity and numbers beyond ±1.8e308 are refused"


async def _answer(send: Send, status: int, error: ErrorBody) -> None:
    body = orjson.dumps(scrub_values(error.model_dump()))
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
