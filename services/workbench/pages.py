"""The workbench's pages: sign-in, 待办, 案件, 窗口登记, 分流, 督办, 统计."""

from __future__ import annotations

import secrets
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.enums import Risk, Status
from services.workbench import store
from services.workbench.accounts import Role, SignInThrottle, check_password
from services.workbench.client import ServiceError, Services
from services.workbench.forms import (
    ASSIGNMENT_FIELDS,
    STEP_FIELDS,
    field_of,
    missing,
    step_forms,
    transition_body,
)
from services.workbench.labels import STEP_ZH
from services.workbench.web import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Signed,
    checked_form,
    digest,
    page,
    set_cookie,
    signed_in,
    time_left,
)

Me = Annotated[Signed, Depends(signed_in)]
# Done with, from the 待办 list's point of view (shown only when asked for by status). A closed
# case is still someone's work: the follow-up call (回访), the rating, the archive.
DONE = {Status.ARCHIVED.value}
TODO_FILTERS = ("status", "risk", "category", "tier", "channel", "jurisdiction", "overdue")
LIST_LIMIT = 200  # one page of mediation's list: the newest 200 cases matching the filters
RISK_ORDER = {Risk.RED.value: 0, Risk.ORANGE.value: 1, Risk.YELLOW.value: 2, Risk.BLUE.value: 3}

router = APIRouter()


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _deadline(case: dict[str, Any]) -> str | None:
    """The running limit: acceptance until accepted, then resolution, none once done."""
    status = case["status"]
    if status in (Status.ROUTED, Status.AWAITING_DISPATCH, Status.RETURNED):
        return case.get("accept_by")
    if status in (Status.ACCEPTED, Status.IN_MEDIATION):
        return case.get("resolve_by")
    return None


def _with_time_left(case: dict[str, Any]) -> dict[str, Any]:
    text, seconds = time_left(_deadline(case))
    return {**case, "time_left": text, "seconds_left": seconds}


def _todo_order(case: dict[str, Any]) -> tuple[int, float, str]:
    """Red first, then the least time left (overdue first), then those with no limit."""
    seconds = case["seconds_left"]
    return (0 if case.get("risk") == Risk.RED else 1,
            seconds if seconds is not None else float("inf"), case["received_at"])


# --- sign-in ---------------------------------------------------------------------------

SIGN_IN_REASONS = {"expired": "会话已超时或已失效，请重新登录。",
                   "disabled": "该账号已停用，请联系管理员。",
                   "signed_out": "您已安全退出。",
                   "key": "您的账号权限已变更，请重新登录。"}


def _sign_in_page(request: Request, *, message: str = "", error: str = "",
                  username: str = "", status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = page(request, "login.html", {"message": message, "error": error,
                                            "username": username, "login_csrf": token},
                    status=status)
    set_cookie(request, response, LOGIN_CSRF_COOKIE, token)
    return response


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def login_form(request: Request, reason: str = "") -> Response:
    return _sign_in_page(request, message=SIGN_IN_REASONS.get(reason, ""))


@router.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    form = await request.form()
    username = str(form.get("username", "")).strip()[:64]
    password = str(form.get("password", ""))
    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    form_token = str(form.get("csrf_token", ""))
    if not cookie_token or not secrets.compare_digest(cookie_token, form_token):
        return _sign_in_page(request, error="页面已过期，请重新输入后登录。", username=username,
                             status=403)
    throttle: SignInThrottle = request.app.state.throttle
    address = request.client.host if request.client else "-"
    wait = throttle.retry_after(username, address)
    if wait > 0:
        return _sign_in_page(request, error=f"登录失败次数过多，请 {int(wait // 60) + 1} "
                             "分钟后再试。", username=username, status=429)
    engine: AsyncEngine = request.app.state.engine
    user = await store.get_user(engine, username) if username else None
    ok = check_password(password, user["password_hash"] if user else None)
    if not ok or user is None or user["disabled_at"] is not None:
        throttle.failed(username, address)
        return _sign_in_page(request, error="用户名或密码错误，或账号已停用。",
                             username=username, status=401)
    throttle.succeeded(username)
    token = secrets.token_urlsafe(32)
    await store.new_session(engine, digest(token), username, secrets.token_urlsafe(32))
    response = RedirectResponse("/todo", status_code=303)
    set_cookie(request, response, SESSION_COOKIE, token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request, me: Me) -> Response:
    await checked_form(request, me)
    await store.end_session(request.app.state.engine, me.session_hash)
    response = RedirectResponse("/login?reason=signed_out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/", include_in_schema=False)
async def home() -> Response:
    return RedirectResponse("/todo", status_code=303)


# --- 待办 --------------------------------------------------------------------------------

def _filters(request: Request) -> dict[str, str]:
    return {k: v for k in TODO_FILTERS if (v := request.query_params.get(k, "").strip())}


async def _todo(request: Request, me: Signed) -> dict[str, Any]:
    filters = _filters(request)
    params: dict[str, Any] = {**filters, "limit": LIST_LIMIT}
    listing = await _services(request).cases(me.staff.token, params)
    items = [_with_time_left(c) for c in listing["items"]]
    if "status" not in filters:
        items = [c for c in items if c["status"] not in DONE]
    items.sort(key=_todo_order)
    counts = Counter(c["status"] for c in items)
    return {"cases": items, "counts": sorted(counts.items()), "filters": filters,
            "more": listing.get("next_cursor") is not None,
            "query": str(request.url.query), "now": datetime.now(UTC)}


@router.get("/todo", response_class=HTMLResponse, include_in_schema=False)
async def todo(request: Request, me: Me) -> Response:
    return page(request, "todo.html", await _todo(request, me), signed=me)


@router.get("/todo/rows", response_class=HTMLResponse, include_in_schema=False)
async def todo_rows(request: Request, me: Me) -> Response:
    """The list alone, for htmx's periodic refresh."""
    return page(request, "_todo_list.html", await _todo(request, me), signed=me)


# --- 案件 --------------------------------------------------------------------------------

async def _case_page(request: Request, me: Signed, case_id: str, *, status: int = 200,
                     open_step: str = "", errors: dict[str, str] | None = None,
                     values: dict[str, str] | None = None, message: str = "",
                     problem: str = "", revealed: dict[str, dict[str, Any]] | None = None
                     ) -> Response:
    case = _with_time_left(await _services(request).case(me.staff.token, case_id))
    # Only the lead department's staff move a case (mediation refuses the others with 403):
    # a cooperating department, a clerk or a leader reads it.
    read_only = me.staff.role in (Role.CLERK, Role.LEADER) or bool(
        me.staff.departments and case.get("lead_department") not in me.staff.departments)
    allowed = [] if read_only else [
        s for s in case["allowed_transitions"]
        if me.staff.may_dispatch or s != Status.RETURNED_TO_SOURCE]
    assignable = me.staff.may_dispatch and case["status"] in (
        Status.ROUTED, Status.ACCEPTED, Status.AWAITING_DISPATCH)
    decision = case.get("decision") or {}
    return page(request, "case.html", {
        "case": case, "decision": decision, "steps": step_forms(allowed),
        "read_only": read_only,
        "assignable": assignable, "assignment_fields": ASSIGNMENT_FIELDS,
        "open_step": open_step, "errors": errors or {}, "values": values or {},
        "message": message, "problem": problem, "revealed": revealed or {},
        "people": _people(case),
        "accept_left": time_left(case.get("accept_by"))[0],
        "resolve_left": time_left(case.get("resolve_by"))[0],
    }, status=status, signed=me)


def _people(case: dict[str, Any]) -> list[dict[str, Any]]:
    """The reporter and the parties, as the case view names them (masked numbers)."""
    report = case.get("report") or {}
    return ([report["reporter"]] if report.get("reporter") else []) + list(
        report.get("parties") or [])


@router.get("/cases/{case_id}", response_class=HTMLResponse, include_in_schema=False)
async def case_view(request: Request, case_id: str, me: Me, done: str = "") -> Response:
    message = f"已完成：{STEP_LABEL.get(done, done)}。" if done else ""
    return await _case_page(request, me, case_id, message=message)


STEP_LABEL: dict[str, str] = {**{str(k): v for k, v in STEP_ZH.items()},
                              "assignment": "分派"}


def _conflict_message(exc: ServiceError) -> str:
    if exc.body.get("error") == "version_conflict":
        return ("此案件刚被他人更新，您的操作未生效。下面是最新内容，请核对后再操作。")
    allowed = exc.body.get("allowed") or []
    return ("案件当前状态不允许此操作，未生效。下面是最新内容"
            + (f"；现在可以：{'、'.join(STEP_LABEL.get(a, a) for a in allowed)}" if allowed
               else "") + "。")


def _api_errors(exc: ServiceError) -> dict[str, str]:
    return {field_of(f.get("field", "")): f.get("reason_zh") or f.get("reason", "无效") for f in exc.fields}


@router.post("/cases/{case_id}/steps", include_in_schema=False)
async def take_step(request: Request, case_id: str, me: Me) -> Response:
    form = await checked_form(request, me)
    to_status = form.get("to_status", "")
    if to_status not in {s.value for s in STEP_FIELDS}:
        return await _case_page(request, me, case_id, status=422,
                                problem="未知的操作，请刷新页面后重试。")
    fields = STEP_FIELDS[Status(to_status)]
    errors = missing(fields, form)
    version = int(form["expected_version"]) if form.get("expected_version", "").isdigit() else 0
    if errors or version < 1:
        return await _case_page(request, me, case_id, status=422, open_step=to_status,
                                errors=errors, values=form, problem="请补全标红的字段。")
    body = transition_body(to_status, form, me.staff.display_name, version)
    try:
        await _services(request).transition(me.staff.token, case_id, body)
    except ServiceError as exc:
        if exc.status == 409:
            return await _case_page(request, me, case_id, status=409,
                                    problem=_conflict_message(exc))
        if exc.status == 422:
            return await _case_page(request, me, case_id, status=422, open_step=to_status,
                                    errors=_api_errors(exc), values=form,
                                    problem="请按提示修改标红的字段。")
        raise
    return RedirectResponse(f"/cases/{case_id}?done={to_status}", status_code=303)


@router.post("/cases/{case_id}/assignment", include_in_schema=False)
async def assign(request: Request, case_id: str, me: Me) -> Response:
    form = await checked_form(request, me)
    errors = missing(ASSIGNMENT_FIELDS, form)
    version = int(form["expected_version"]) if form.get("expected_version", "").isdigit() else 0
    if errors or version < 1:
        return await _case_page(request, me, case_id, status=422, open_step="assignment",
                                errors=errors, values=form, problem="请补全标红的字段。")
    body = {"lead_department": form["lead_department"], "tier": form["tier"],
            "reason": form["reason"].strip(), "actor": me.staff.display_name,
            "expected_version": version}
    try:
        await _services(request).assign(me.staff.token, case_id, body)
    except ServiceError as exc:
        if exc.status == 409:
            return await _case_page(request, me, case_id, status=409,
                                    problem=_conflict_message(exc))
        if exc.status == 422:
            return await _case_page(request, me, case_id, status=422, open_step="assignment",
                                    errors=_api_errors(exc), values=form,
                                    problem="请按提示修改标红的字段。")
        raise
    return RedirectResponse(f"/cases/{case_id}?done=assignment", status_code=303)


REVEAL_REFUSED = {
    403: "只有牵头部门的办理人员可以查看号码；协办部门请联系牵头部门。",
    404: "找不到此案件，或您无权查看。",
    410: "此案件的个人信息已按规定删除，无法显示号码。"}


@router.post("/cases/{case_id}/reveal", include_in_schema=False)
async def reveal(request: Request, case_id: str, me: Me) -> Response:
    """显示号码: the numbers in clear, once, on this answer only (pages are never cached);
    intake records who asked and why."""
    form = await checked_form(request, me)
    reason = form.get("reason", "").strip()
    person = form.get("person", "").strip() or None
    if not reason:
        return await _case_page(request, me, case_id, status=422, open_step="reveal",
                                errors={"reason": "请填写查看理由（将记录在案）"},
                                values=form, problem="请补全标红的字段。")
    try:
        answer = await _services(request).reveal(me.staff.token, case_id, reason, person)
    except ServiceError as exc:
        if exc.status == 422:
            return await _case_page(request, me, case_id, status=422, open_step="reveal",
                                    errors=_api_errors(exc), values=form,
                                    problem="请按提示修改标红的字段。")
        if exc.status in REVEAL_REFUSED:
            return await _case_page(request, me, case_id, status=exc.status,
                                    problem=REVEAL_REFUSED[exc.status])
        raise
    revealed = {p["person"]: p for p in answer["people"]}
    return await _case_page(request, me, case_id, revealed=revealed, message=(
        "号码已显示，本次查看已记录（查看人、理由）。离开本页后不再显示。" if revealed
        else "此案件没有可显示的号码。"))


# --- 窗口登记 ------------------------------------------------------------------------------

WALK_IN_FIELDS = ("content", "visitor_name", "visitor_phone", "address", "region_code",
                  "category", "people_count")


def _walk_in_page(request: Request, me: Signed, *, values: dict[str, str] | None = None,
                  errors: dict[str, str] | None = None, status: int = 200,
                  problem: str = "") -> Response:
    values = {"visit_id": uuid.uuid4().hex, **(values or {})}
    return page(request, "walk_in.html", {"values": values, "errors": errors or {},
                                          "problem": problem}, status=status, signed=me)


@router.get("/walk-in", response_class=HTMLResponse, include_in_schema=False)
async def walk_in_form(request: Request, me: Me) -> Response:
    return _walk_in_page(request, me)


def _walk_in_payload(form: dict[str, str]) -> dict[str, Any]:
    payload: dict[str, Any] = {"visit_id": form.get("visit_id") or None,
                               "content": form.get("content", "").strip()}
    visitor = {k: v for k, v in (("name", form.get("visitor_name", "").strip()),
                                 ("phone", form.get("visitor_phone", "").strip())) if v}
    if visitor:
        payload["visitor"] = visitor
    for name in ("address", "region_code", "category"):
        if value := form.get(name, "").strip():
            payload[name] = value
    if (count := form.get("people_count", "").strip()):
        payload["people_count"] = int(count) if count.isdigit() else count
    return payload


WALK_IN_API_FIELDS = {"visitor.name": "visitor_name", "visitor.phone": "visitor_phone"}


@router.post("/walk-in", include_in_schema=False)
async def walk_in(request: Request, me: Me) -> Response:
    form = await checked_form(request, me)
    if not form.get("content", "").strip():
        return _walk_in_page(request, me, values=form, errors={"content": "必填"}, status=422,
                             problem="请补全标红的字段。")
    try:
        code, answer = await _services(request).walk_in(me.staff.token, _walk_in_payload(form))
    except ServiceError as exc:
        if exc.status == 422:
            errors = {WALK_IN_API_FIELDS.get(f.get("field", ""), field_of(f.get("field", ""))):
                      f.get("reason_zh") or f.get("reason", "无效") for f in exc.fields}
            return _walk_in_page(request, me, values=form, errors=errors, status=422,
                                 problem="请按提示修改标红的字段。")
        raise
    return page(request, "walk_in_done.html", {
        "case_id": answer["case_id"], "duplicate": code == 200}, signed=me)


# --- 分流 --------------------------------------------------------------------------------

@router.get("/dispatch", response_class=HTMLResponse, include_in_schema=False)
async def dispatch_queue(request: Request, me: Me) -> Response:
    if not me.staff.may_dispatch:
        return page(request, "error.html", {"title": "无权访问分流",
                                            "detail": "分流队列仅分流调度人员可用。"},
                    status=403, signed=me)
    services = _services(request)
    waiting = await services.cases(me.staff.token, {"status": "awaiting_dispatch",
                                                    "limit": LIST_LIMIT})
    returned = await services.cases(me.staff.token, {"status": "returned",
                                                     "limit": LIST_LIMIT})
    return page(request, "dispatch.html", {
        "waiting": [_with_time_left(c) for c in waiting["items"]],
        "returned": [_with_time_left(c) for c in returned["items"]]}, signed=me)


# --- 督办 --------------------------------------------------------------------------------

@router.get("/supervision", response_class=HTMLResponse, include_in_schema=False)
async def supervision(request: Request, me: Me) -> Response:
    if not me.staff.may_supervise:
        return page(request, "error.html", {"title": "无权访问督办",
                                            "detail": "督办页面仅中心领导可用。"},
                    status=403, signed=me)
    services = _services(request)
    overdue = await services.cases(me.staff.token, {"overdue": "true", "limit": LIST_LIMIT})
    red = await services.cases(me.staff.token, {"risk": "red", "status": "routed",
                                                "limit": LIST_LIMIT})
    supervised = await services.cases(me.staff.token, {"supervised": "true",
                                                       "limit": LIST_LIMIT})
    return page(request, "supervision.html", {
        "by_department": _by_department(overdue["items"]),
        "supervised": _by_department([c for c in supervised["items"]
                                      if c["status"] in UNDER_SUPERVISION]),
        "red": [_with_time_left(c) for c in red["items"]]}, signed=me)


# A case is supervised while one of its clocks runs (mediation's time_limits.RUNS_IN); once
# resolved or closed its supervision record stays on its page, not on the leaders' list.
UNDER_SUPERVISION = {Status.ROUTED.value, Status.ACCEPTED.value, Status.IN_MEDIATION.value,
                     Status.RETURNED.value, Status.AWAITING_DISPATCH.value}


def _by_department(cases: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Cases by lead department, the department with the most first."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for case in cases:
        grouped[case.get("lead_department") or ""].append(_with_time_left(case))
    return sorted(grouped.items(), key=lambda kv: -len(kv[1]))


# --- 统计 --------------------------------------------------------------------------------

FIGURES = (("resolution_rate", "化解率"), ("closure_rate", "办结率"),
           ("on_time_rate", "按期办结率"), ("satisfaction_share_4_5", "满意率"),
           ("diversion_rate", "分流率"))
DIMENSIONS = (("department", "牵头部门"), ("category", "纠纷类别"), ("tier", "层级"))
PERIODS = {"day": "按日", "week": "按周", "month": "按月"}


def _stats_params(request: Request) -> dict[str, str]:
    params = {}
    for name in ("received_from", "received_to"):
        if value := request.query_params.get(name, "").strip():
            params[name] = value
    return params


@router.get("/stats", response_class=HTMLResponse, include_in_schema=False)
async def stats(request: Request, me: Me) -> Response:
    if not me.staff.may_see_stats:
        return page(request, "error.html", {"title": "无权查看统计",
                                            "detail": "统计仅对办理、分流和领导岗位开放。"},
                    status=403, signed=me)
    period = request.query_params.get("period", "month")
    period = period if period in PERIODS else "month"
    params = _stats_params(request)
    services = _services(request)
    reports = {"period": await services.stats(me.staff.token,
                                              {**params, "group_by": period})}
    for name, _ in DIMENSIONS:
        reports[name] = await services.stats(me.staff.token, {**params, "group_by": name})
    return page(request, "stats.html", {
        "reports": reports, "period": period, "periods": PERIODS, "params": params,
        "figures": FIGURES, "dimensions": DIMENSIONS}, signed=me)


@router.get("/stats.csv", include_in_schema=False)
async def stats_csv(request: Request, me: Me) -> Response:
    group_by = request.query_params.get("group_by", "month")
    answer = await _services(request).stats_csv(
        me.staff.token, {**_stats_params(request), "group_by": group_by})
    return Response(answer.content, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": answer.headers.get(
            "content-disposition", 'attachment; filename="fengqiao-stats.csv"'),
        "Cache-Control": "no-store"})
