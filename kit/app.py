"""The FastAPI app factory every service uses: lifespan, errors, health, readiness, metrics."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import Match

from kit.errors import install_error_handlers
from kit.limits import BodySizeLimit
from kit.logs import configure_logging
from kit.metrics import HTTP_DURATION, HTTP_REQUESTS
from kit.runtime import Runtime

UNTRACKED = {"/metrics", "/healthz", "/readyz"}


def create_app(runtime: Runtime, *, title: str, description: str,
               routers: Sequence[APIRouter], version: str = "1.0.0",
               on_start: Callable[[], Awaitable[None]] | None = None) -> FastAPI:
    settings = runtime.settings
    configure_logging(runtime.service, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        if on_start:
            await on_start()
        app.state.ready = True
        yield
        # Readiness goes false first, so load balancers stop sending work before we stop.
        app.state.ready = False
        await runtime.stop()

    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    app.state.runtime = runtime
    app.state.keys = runtime.keys
    app.state.ready = False
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    for router in routers:
        app.include_router(router)

    @app.get("/healthz", tags=["health"], summary="Liveness: the process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": runtime.service, "pid": str(os.getpid())}

    @app.get("/readyz", tags=["health"], summary="Readiness: database and broker reachable",
             responses={503: {"description": "not ready"}})
    async def readyz() -> JSONResponse:
        checks = await runtime.readiness()
        ok = app.state.ready and all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics",
             response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        # An exception escaping a route passes through here and becomes a 500 only in
        # Starlette's outermost middleware: count it as the 500 the client receives, or
        # the error-rate panels and alerts would never see a crashing route.
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = _route_template(app, request)
            if route not in UNTRACKED:
                method = request.method
                HTTP_REQUESTS.labels(runtime.service, route, method, str(status)).inc()
                HTTP_DURATION.labels(runtime.service, route, method).observe(
                    time.perf_counter() - started)

    return app


def _route_template(app: FastAPI, request: Request) -> str:
    """The route's path template, so that label values stay few (not one per case id)."""
    route = request.scope.get("route")
    if route is not None and hasattr(route, "path"):
        return str(route.path)
    for candidate in app.router.routes:
        match, _ = candidate.matches(request.scope)
        if match == Match.FULL and hasattr(candidate, "path"):
            return str(candidate.path)
    return "<unmatched>"
