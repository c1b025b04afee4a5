"""Sign-in sessions, CSRF tokens and page rendering shared by every page.

A session is a random cookie value (HttpOnly, SameSite=Lax, Secure behind TLS) whose SHA-256
is stored with the person's name, a CSRF token and when it was last used; unused for
FQ_WORKBENCH_IDLE_MINUTES it is gone. Every form carries the CSRF token and every POST is
refused without it (the sign-in form, before any session, uses a double-submit cookie)."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncEngine

from kit.settings import Settings
from services.workbench import labels, store
from services.workbench.accounts import Staff, staff_of

SESSION_COOKIE = "fq_wb_session"
LOGIN_CSRF_COOKIE = "fq_wb_login_csrf"
# A session's last use is written at most this often (each page would otherwise write).
TOUCH_EVERY_SECONDS = 15.0
# The 待办 list's own refreshes say so in this header: they do not keep a session alive.
POLL_HEADER = "x-workbench-poll"
CHINA = timezone(timedelta(hours=8), "CST")

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _local_time(value: str | datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if not value:
        return "—"
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.astimezone(CHINA).strftime(fmt)


def time_left(deadline: str | None, now: datetime | None = None) -> tuple[str, float | None]:
    """("剩余 3小时20分" or "超期 1天2小时", seconds left) for a deadline."""
    if not deadline:
        return "—", None
    now = now or datetime.now(UTC)
    seconds = (datetime.fromisoformat(deadline) - now).total_seconds()
    left = abs(int(seconds))
    days, rest = divmod(left, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    text = (f"{days}天{hours}小时" if days else f"{hours}小时{minutes}分" if hours
            else f"{minutes}分")
    return ("剩余 " if seconds >= 0 else "超期 ") + text, seconds


templates.env.filters["local_time"] = _local_time
templates.env.globals.update(
    STATUS=labels.STATUSES, CATEGORY=labels.CATEGORIES, DEPARTMENT=labels.DEPARTMENTS,
    TIER=labels.TIERS, RISK=labels.RISKS, CHANNEL=labels.CHANNELS, REFERRAL=labels.REFERRALS,
    STEP=labels.STEP_ZH, PARTY_ROLE=labels.PARTY_ROLES,
    SUPERVISION_LEVEL=labels.SUPERVISION_LEVELS, URGENCY=labels.URGENCIES,
    CHANNEL_FIELD=labels.CHANNEL_FIELDS)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Signed:
    staff: Staff
    csrf_token: str
    session_hash: str


class SignInRequired(Exception):
    """No valid session: the page sends the person to sign in (`reason` says why)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class CsrfRefused(Exception):
    """A POST without the form's CSRF token."""


async def signed_in(request: Request) -> Signed:
    """The person of this request's session, or SignInRequired."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise SignInRequired()
    engine: AsyncEngine = request.app.state.engine
    settings: Settings = request.app.state.settings
    session_hash = digest(cookie)
    session = await store.get_session(engine, session_hash)
    if session is None:
        raise SignInRequired("expired")
    now = time.time()
    if now - session["last_seen"] > settings.workbench_idle_minutes * 60:
        await store.end_session(engine, session_hash)
        raise SignInRequired("expired")
    user = await store.get_user(engine, session["username"])
    if user is None or user["disabled_at"] is not None:
        await store.end_session(engine, session_hash)
        raise SignInRequired("disabled")
    if POLL_HEADER not in request.headers and now - session["last_seen"] > TOUCH_EVERY_SECONDS:
        await store.touch_session(engine, session_hash, now)
    return Signed(staff_of(user, settings.workbench_secret), session["csrf_token"],
                  session_hash)


async def checked_form(request: Request, signed: Signed) -> dict[str, str]:
    """The POSTed form, once its CSRF token matches the session's."""
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    token = values.pop("csrf_token", "")
    if not token or not secrets.compare_digest(token, signed.csrf_token):
        raise CsrfRefused()
    return values


def secure_cookie(request: Request) -> bool:
    settings: Settings = request.app.state.settings
    if settings.workbench_secure_cookie is not None:
        return settings.workbench_secure_cookie
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(name, value, httponly=True, samesite="lax", path="/",
                        secure=secure_cookie(request))


def page(request: Request, name: str, context: dict[str, Any], status: int = 200,
         signed: Signed | None = None) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    values = {"me": signed.staff if signed else None,
              "csrf_token": signed.csrf_token if signed else "",
              "refresh_seconds": int(settings.workbench_refresh_seconds),
              "path": request.url.path, **context}
    response = templates.TemplateResponse(request, name, values, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def to_sign_in(request: Request, reason: str = "") -> Response:
    target = "/login" + (f"?reason={reason}" if reason else "")
    if request.headers.get("hx-request"):
        # htmx follows this with a full page load.
        response: Response = Response(status_code=401, headers={"HX-Redirect": target})
    else:
        response = RedirectResponse(target, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
