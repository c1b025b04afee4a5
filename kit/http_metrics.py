"""HTTP request counts and latencies by route template, as a plain ASGI middleware (the
decorator form runs every request through extra tasks and streams: a visible cost)."""

from __future__ import annotations

import time
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kit.metrics import HTTP_DURATION, HTTP_REQUESTS

UNTRACKED = {"/metrics", "/healthz", "/readyz"}


class HttpMetrics:
    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        # The metrics' children by (route, method, status), looked up once: labels() on every
        # request was about 1 % of a single post's CPU. Routes are templates, so these are few.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # An exception escaping a route reaches the client as a 500: count it as one, or
        # the error-rate panels and alerts would never see a crashing route.
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = _route_template(scope)
            if route not in UNTRACKED:
                key = (route, scope["method"], status)
                children = self._children.get(key)
                if children is None:
                    children = self._children[key] = (
                        HTTP_REQUESTS.labels(self.service, route, key[1], str(status)),
                        HTTP_DURATION.labels(self.service, route, key[1]))
                children[0].inc()
                children[1].observe(time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    """The route's path template, so that label values stay few (not one per case id)."""
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return str(route.path)
    app = scope.get("app")
    for candidate in getattr(getattr(app, "router", None), "routes", ()):
        match, _ = candidate.matches(scope)
        if match == Match.FULL and hasattr(candidate, "path"):
            return str(candidate.path)
    return "<unmatched>"
