"""Workbench wiring: the pages, static assets, sessions' database, and the HTTP client to the
other services. No broker, no consumers: it reads and acts only through the REST APIs."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kit import migrate
from kit.db import create_engine, ping
from kit.http_metrics import HttpMetrics
from kit.limits import BodySizeLimit
from kit.logs import configure_logging
from kit.settings import Settings
from services.workbench import store
from services.workbench.accounts import SignInThrottle
from services.workbench.client import ServiceError, Services, ServiceUnavailable
from services.workbench.pages import router
from services.workbench.web import (
    CsrfRefused,
    Signed,
    SignInRequired,
    page,
    signed_in,
    to_sign_in,
)

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
SERVICE_ZH = {"mediation": "案件办理服务（mediation）", "intake": "受理服务（intake）"}


def create(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings(service="workbench")
    configure_logging("workbench", settings.log_level)
    engine = create_engine(settings.effective_database_url(), pool_size=5)

    async def prune() -> None:
        while True:
            await asyncio.sleep(300)
            try:
                await store.prune_sessions(engine, settings.workbench_idle_minutes * 60)
            except Exception:
                log.exception("pruning idle sessions failed")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await migrate.upgrade(engine, "workbench", store.metadata)
        pruner = asyncio.create_task(prune())
        app.state.ready = True
        yield
        app.state.ready = False
        pruner.cancel()
        with suppress(asyncio.CancelledError):
            await pruner
        await app.state.services.close()
        await engine.dispose()

    app = FastAPI(title="fengqiao workbench", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.engine = engine
    app.state.services = Services(settings)
    app.state.throttle = SignInThrottle(settings.workbench_login_attempts,
                                        settings.workbench_login_attempts * 4)
    app.state.ready = False
    app.add_middleware(BodySizeLimit, max_bytes=1024 * 1024)
    app.add_middleware(HttpMetrics, service="workbench")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)
    _install_error_pages(app)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "
            "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'")
        return response

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": "workbench", "pid": str(os.getpid())}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        ok = app.state.ready and await ping(engine)
        return JSONResponse({"ready": ok, "checks": {"database": ok}},
                            status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def _install_error_pages(app: FastAPI) -> None:
    """Every failure is a page that says what happened and what to do next."""

    async def _me(request: Request) -> Signed | None:
        try:
            return await signed_in(request)
        except SignInRequired:
            return None

    @app.exception_handler(SignInRequired)
    async def sign_in(request: Request, exc: SignInRequired) -> Response:
        return to_sign_in(request, exc.reason)

    @app.exception_handler(CsrfRefused)
    async def csrf(request: Request, exc: CsrfRefused) -> Response:
        return page(request, "error.html", {
            "title": "表单已失效", "detail": "此表单已过期或不是从本系统页面提交的，操作未生效。"
            "请返回上一页刷新后重新提交。"}, status=403, signed=await _me(request))

    @app.exception_handler(ServiceUnavailable)
    async def unavailable(request: Request, exc: ServiceUnavailable) -> Response:
        return page(request, "error.html", {
            "title": "服务暂时无法连接",
            "detail": f"{SERVICE_ZH.get(exc.service, exc.service)}暂时没有应答，操作可能未生效。"
            "请稍候刷新页面重试；若持续出现，请联系系统管理员检查服务状态（make run 的日志在 "
            "var/log/）。"}, status=503, signed=await _me(request))

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        if exc.status == 401:
            return to_sign_in(request, "key")
        titles = {403: ("无权操作", "您的账号没有执行此操作或查看此内容的权限。如需权限，请联系管理员。"),
                  404: ("未找到", "未找到该案件，或该案件不在您的部门和辖区范围内。请返回待办列表。"),
                  409: ("操作冲突", "案件已被他人更新，请返回案件页刷新后重试。"),
                  422: ("请求有误", "提交的条件或内容无效，请返回修改后重试。"),
                  429: ("操作过于频繁", "请稍候一分钟再试。")}
        title, detail = titles.get(exc.status, ("操作未完成", "请返回上一页重试。"))
        message = str(exc.body.get("message", ""))
        return page(request, "error.html", {"title": title, "detail": detail,
                                            "technical": message},
                    status=exc.status, signed=await _me(request))

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> Response:
        return page(request, "error.html", {"title": "页面不存在",
                                            "detail": "请从上方导航进入需要的页面。"},
                    status=404, signed=await _me(request))
