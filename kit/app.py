"""The FastAPI app factory every service uses: lifespan, errors, health, readiness, metrics."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.middleware import Middleware

from kit.auth import KeyBeforeBody
from kit.errors import ErrorBody, install_error_handlers
from kit.http_metrics import HttpMetrics
from kit.limits import BodySizeLimit, StrictJsonBody
from kit.logs import configure_logging
from kit.ratelimit import RateLimiter
from kit.runtime import Runtime


def create_app(runtime: Runtime, *, title: str, description: str,
               routers: Sequence[APIRouter], version: str = "1.0.0",
               on_start: Callable[[], Awaitable[None]] | None = None,
               inner_middleware: Sequence[Middleware] = ()) -> FastAPI:
    """`inner_middleware`: a service's own, inside the HTTP metrics and outside the body size
    limit, the key check and the strict JSON check (intake's single-post fast path)."""
    settings = runtime.settings
    settings.check_secrets()  # no built-in secret outside development
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
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second,
                                         settings.rate_limit_burst)
    app.state.ready = False
    install_error_handlers(app)
    _document_error_format(app)
    # Outermost last: metrics, then the service's own (inner_middleware), then the size
    # limit, then the key (before any body is read), then the strict JSON check.
    app.add_middleware(StrictJsonBody)
    app.add_middleware(KeyBeforeBody)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    for middleware in reversed(inner_middleware):
        app.add_middleware(middleware.cls, *middleware.args, **middleware.kwargs)
    app.add_middleware(HttpMetrics, service=runtime.service)
    for router in routers:
        app.include_router(router)

    @app.get("/healthz", tags=["health"],
             summary="Liveness: the process is up and none of its loops is stuck",
             responses={503: {"description": "a consumer loop, the outbox relay or a leader "
                                             "job made no progress for FQ_LIVENESS_BOUND_SECONDS"}})
    async def healthz() -> JSONResponse:
        # Restarting helps a stuck loop; it does not help an unreachable database or broker,
        # which /readyz reports (a broker down for longer than the bound shows here too).
        stuck = runtime.stuck()
        body: dict[str, object] = {"status": "stuck" if stuck else "ok", "service": runtime.service,
                "pid": str(os.getpid()), "seconds_since_progress": runtime.heartbeats.ages()}
        if stuck:
            body["stuck"] = sorted(stuck)
        return JSONResponse(body, status_code=503 if stuck else 200)

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

    return app


def _document_error_format(app: FastAPI) -> None:
    """FastAPI documents its own 422 body (HTTPValidationError) on every route with
    parameters; ours answer with ErrorBody, so the document says that instead."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if "ErrorBody" not in components:
            error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(error_schema.pop("$defs", {}))
            components["ErrorBody"] = error_schema
        ours = "#/components/schemas/ErrorBody"

        def replace(node: Any) -> Any:
            if isinstance(node, dict):
                if node.get("$ref") == "#/components/schemas/HTTPValidationError":
                    return {**node, "$ref": ours}
                return {k: replace(v) for k, v in node.items()}
            if isinstance(node, list):
                return [replace(v) for v in node]
            return node

        schema["paths"] = replace(schema.get("paths", {}))
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


