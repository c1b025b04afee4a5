"""The single report POST (`POST /v1/intake/{channel}`) without FastAPI's request machinery,
when the request is an ordinary one; every other request goes through the FastAPI stack.

Under load, half of intake's CPU per post was framework work: four middlewares each
wrapping `receive` and `send`, routing through the included routers, the dependency tree
(bearer token, scope, rate limit), the body read through Starlette's streams, a second
look-up of the key. This middleware sits inside the HTTP metrics and outside the body
limit, the key check and the strict JSON check (kit/app.py), and answers a request itself
only when every check passes: one key look-up, one body read, the same JSON parse and
payload validation FastAPI does, then the route's own code (`_submit_one`, `_answer`).

Anything else — no key or an unknown one, a missing scope, a channel the key may not use,
a body that is too large, not JSON or not valid, a bad Idempotency-Key, a key over its rate,
an unusual header (two Authorization headers, another content type) — is handed to the
FastAPI stack *before anything has happened*: the body read so far is replayed to it, no
rate token was taken, nothing was stored. So every refusal is the stack's own answer, byte
for byte, and its order of checks is kept (401 before the body is read, 422 before the rate
limit's 429 only where FastAPI had it so: the rate is taken last here, and a key over its
rate falls back to the stack, which answers as it always did).

What the route can raise once the report is submitted (409 for a conflict, 503 for a
database that is down) is answered by the app's own exception handlers; anything else
propagates to Starlette's ServerErrorMiddleware (500), as from the route.

A path is served here only after one request to it has gone through the stack and been
routed to the channel's own submit route (`scope["route"]` is that route object), so the
routing is FastAPI's, learnt, not repeated. `scope["route"]` is set on the fast path too, for
the HTTP metrics' route label.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import orjson
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kit.auth import KeyStore
from kit.auth import Scope as KeyScope
from kit.errors import ApiError
from kit.ratelimit import RateLimiter, seconds_to_wait
from services.intake.api import _submit_one, _with_idempotency_key
from services.intake.domain import ADAPTERS, ChannelAdapter

_JSON_TYPES = frozenset({b"application/json", b"application/json; charset=utf-8"})
# The headers the fast path reads: a request with two of any of them goes to the stack.
_COUNTED_HEADERS = frozenset({b"authorization", b"content-type", b"content-length",
                              b"idempotency-key"})


class SinglePostFastPath:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self._paths = {f"/v1/intake/{a.channel.value}": a for a in ADAPTERS.values()}
        self._learnt: dict[str, APIRoute] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        adapter = self._paths.get(path)
        if adapter is None or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        route = self._learnt.get(path)
        if route is None:
            await self.app(scope, receive, send)
            self._learn(path, adapter, scope.get("route"))
            return
        await self._serve(scope, receive, send, adapter, route)

    def _learn(self, path: str, adapter: ChannelAdapter[Any], route: Any) -> None:
        if (isinstance(route, APIRoute) and route.path == path
                and route.methods == {"POST"}
                and route.operation_id == f"submit_{adapter.channel.value}"):
            self._learnt[path] = route

    async def _serve(self, scope: Scope, receive: Receive, send: Send,
                     adapter: ChannelAdapter[Any], route: APIRoute) -> None:
        headers = _ordinary_headers(scope)
        if headers is None:
            await self.app(scope, receive, send)
            return
        authorization, declared_length, idempotency_key = headers
        app = scope["app"]
        keys: KeyStore = app.state.keys
        token = authorization.partition(" ")[2].strip()
        try:
            principal = await keys.principal(token)
        except Exception:  # noqa: BLE001 - the key store failing is the stack's to answer
            principal = None
        if (principal is None or not principal.allows(KeyScope.INTAKE_WRITE)
                or (principal.channels and adapter.channel.value not in principal.channels)
                or (declared_length is not None and declared_length > self.max_bytes)):
            await self.app(scope, receive, send)
            return
        received: list[Message] = []
        body = await self._read_body(receive, received)
        if body is None:  # too large, or the client went away: as the stack would answer
            await self.app(scope, _replaying(received, receive), send)
            return
        payload = _validated(adapter, body)
        if payload is not None and adapter.generates_ids:
            try:
                payload = _with_idempotency_key(payload, adapter.external_id_field,
                                                idempotency_key)
            except ApiError:
                payload = None
        limiter: RateLimiter = app.state.rate_limiter
        if payload is None or seconds_to_wait(limiter, principal):
            await self.app(scope, _replaying(received, receive), send)
            return
        # Admitted: from here on this is the route itself.
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        request = Request(scope, _replaying(received, receive), send)
        try:
            response = await _submit_one(request, adapter, payload, principal)
        except Exception as exc:  # answered as the app's handlers answer it
            handler = _handler_for(app, exc)
            if handler is None:
                raise
            response = handler(request, exc)
            if inspect.isawaitable(response):
                response = await response
        await response(scope, request.receive, send)

    async def _read_body(self, receive: Receive, received: list[Message]) -> bytes | None:
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _ordinary_headers(scope: Scope) -> tuple[str, int | None, str | None] | None:
    """(Authorization, Content-Length, Idempotency-Key) of a request the fast path may serve:
    one Bearer Authorization header, one Content-Type of application/json, at most one of the
    others; None for anything else (the stack decides)."""
    seen: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in _COUNTED_HEADERS:
            if name in seen:
                return None
            seen[name] = value
    authorization, content_type = seen.get(b"authorization"), seen.get(b"content-type")
    length, idempotency = seen.get(b"content-length"), seen.get(b"idempotency-key")
    if authorization is None or content_type is None or content_type.lower() not in _JSON_TYPES:
        return None
    text = authorization.decode("latin-1")
    scheme, _, token = text.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    declared = None
    if length is not None:
        if not length.isdigit():
            return None
        declared = int(length)
    return text, declared, None if idempotency is None else idempotency.decode("latin-1")


def _validated(adapter: ChannelAdapter[Any], body: bytes) -> Any:
    """The payload as FastAPI would validate it, or None when the stack would refuse it.

    The body must pass kit.limits.StrictJsonBody's check (orjson: UTF-8, finite numbers),
    and the value validated is the standard library's parse of it, as FastAPI's (they differ
    on integers past 64 bits)."""
    if not body.strip():
        return None
    try:
        orjson.loads(body)
        value = json.loads(body)
    except Exception:  # noqa: BLE001 - any refusal is the stack's to answer
        return None
    try:
        return adapter.native.model_validate(value)
    except ValidationError:
        return None


def _replaying(received: list[Message], receive: Receive) -> Receive:
    """`receive` with the messages already read given again first."""
    pending = list(received)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()
    return replay


def _handler_for(app: Any, exc: Exception) -> Any:
    """The app's exception handler for `exc`, as Starlette's ExceptionMiddleware finds it
    (by the exception's classes in order); None for those ServerErrorMiddleware answers."""
    handlers = app.exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception or cls is BaseException:
            return None
        if cls in handlers:
            return handlers[cls]
    return None
