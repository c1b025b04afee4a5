"""Mediation's REST API for staff and other platforms: cases (filters, cursor pagination),
lifecycle transitions, and the figures the centres report (JSON or CSV)."""

from __future__ import annotations

import base64
import csv
import io
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.encoders import jsonable_encoder as jsonable
from pydantic import BeforeValidator
from sqlalchemy import literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from contracts.api_mediation import (
    PERIODS,
    AssignmentRequest,
    AuditAction,
    AuditEntry,
    AuditPage,
    CasePage,
    CaseSummary,
    CaseView,
    HistoryEntry,
    StatsDimension,
    StatsReport,
    StatsRow,
    SupervisionEntry,
    TransitionRequest,
    TransitionResult,
    case_geojson_schema,
)
from contracts.enums import Category, Channel, Department, Risk, Status, SupervisionLevel, Tier
from kit.auth import Principal, Scope, require
from kit.errors import ApiError, FieldError, error_responses
from kit.privacy import scrub
from kit.runtime import Runtime
from services.mediation import store
from services.mediation.domain.case_report import audience, case_report, revealable
from services.mediation.domain.figures import (
    COUNT_NAMES,
    DEFINITIONS,
    FIGURE_NAMES,
    LABELS_ZH,
    CaseCounts,
    figures,
    total_of,
)
from services.mediation.domain.lifecycle import (
    DISPATCHER_ONLY,
    IllegalTransition,
    NotAssignable,
    StaleVersion,
    StepDataInvalid,
    staff_targets,
)
from services.mediation.domain.places import parse_bbox
from services.mediation.domain.time_limits import is_overdue
from services.mediation.handlers import assign_case, limit_overrides, transition_case
from services.mediation.hotline_steps import StepNotNow
from services.mediation.merging import close_merged
from services.mediation.store import AU, SV, AuditRecord, C, Case, CaseHistory, H, SupervisionRecord

# Dates and naive times in queries are China Standard Time, as the centres read them.
CHINA = timezone(timedelta(hours=8), "CST")
NUL = "\x00"  # no database stores it in text: such input matches nothing or is refused
TEXT_PATTERN = r"^[^\x00]*$"


# CaseSummary's fields worked out here rather than read from the row.
_DERIVED = frozenset({"overdue", "supervision_level"})
_LEVELS = list(SupervisionLevel)


def _supervision_level(case: Case) -> SupervisionLevel | None:
    levels = [SupervisionLevel(v) for v in (case.acceptance_supervised,
                                            case.resolution_supervised) if v]
    return max(levels, key=_LEVELS.index) if levels else None


def _summary(case: Case, now: datetime) -> CaseSummary:
    values = {name: getattr(case, name) for name in CaseSummary.model_fields
              if name not in _DERIVED}
    status = Status(case.status)
    return CaseSummary(**values, overdue=is_overdue(status, case.accept_by, case.resolve_by, now),
                       supervision_level=_supervision_level(case))


def _feature(case: Case, now: datetime) -> dict[str, Any]:
    """A located case as a GeoJSON Feature: its point and its summary, nothing more."""
    summary = _summary(case, now)
    return {"type": "Feature", "id": case.case_id,
            "geometry": {"type": "Point", "coordinates": [case.lon, case.lat]},
            "properties": jsonable(summary)}


def _box(bbox: str) -> ColumnElement[bool]:
    try:
        return store.in_box(*parse_bbox(bbox))
    except ValueError as exc:
        raise ApiError(422, "validation_failed", f"bbox: {exc}", fields=[
            FieldError(field="bbox", reason=str(exc))]) from None


GEOJSON = "application/geo+json"
CASES_DESCRIPTION = """Filters combine. `jurisdiction` is the node that works the case and everything below it (a
town's code: the cases its town, villages and grids work); `place` is where the case is,
whatever tier works it (a village's code: every case in the village and its grids, a
county-tier one included). Both are code ranges on an index. `bbox` keeps the cases whose
point on the map lies in the box.

With `format=geojson` or `Accept: application/geo+json`: a GeoJSON FeatureCollection of the
cases on the map (those with a point), each a Point feature with the case summary as its
properties, and `next_cursor` to page on as in JSON.
"""


def refused(exc: StepDataInvalid | StaleVersion | IllegalTransition | StepNotNow) -> ApiError:
    """The answer to a step the case refused: 422 naming the data at fault, 409 for a stale
    version or a step its status does not allow (every route that moves a case)."""
    if isinstance(exc, StepDataInvalid):
        return ApiError(422, "validation_failed", str(exc), fields=[
            FieldError(field=p.field, reason=p.reason) for p in exc.problems])
    if isinstance(exc, StaleVersion):
        return ApiError(409, "version_conflict", str(exc),
                        extra={"current_version": exc.current})
    return ApiError(409, "illegal_transition", str(exc), extra={
        "current_status": exc.current.value, "allowed": [s.value for s in exc.allowed]})


def _history(entry: CaseHistory | dict[str, Any]) -> HistoryEntry:
    return HistoryEntry.model_validate(entry, from_attributes=True)


def _encode_cursor(case: Case) -> str:
    raw = orjson.dumps([case.received_at.isoformat(), case.case_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        received_at, case_id = orjson.loads(raw)
        at = datetime.fromisoformat(received_at)
        if at.tzinfo is None or NUL in str(case_id):
            raise ValueError("not a cursor of ours")
        return at.astimezone(UTC), str(case_id)
    except (ValueError, TypeError, OverflowError, orjson.JSONDecodeError) as exc:
        raise ApiError(422, "validation_failed", "cursor is not one this API returned",
                       fields=[FieldError(field="cursor", reason="not a cursor of this API")]
                       ) from exc


def _aware(value: datetime | None, name: str) -> datetime | None:
    """The time as given, or China Standard Time when it has no offset; in UTC."""
    if value is None:
        return None
    try:
        return (value if value.tzinfo else value.replace(tzinfo=CHINA)).astimezone(UTC)
    except OverflowError as exc:
        raise ApiError(422, "validation_failed", f"{name} is out of range", fields=[
            FieldError(field=name, reason="out of range")]) from exc


def _received_between(received_from: datetime | None, received_to: datetime | None
                      ) -> list[ColumnElement[bool]]:
    received_from = _aware(received_from, "received_from")
    received_to = _aware(received_to, "received_to")
    if received_from and received_to and received_from >= received_to:
        raise ApiError(422, "validation_failed", "received_from must be before received_to",
                       fields=[FieldError(field="received_to",
                                          reason="must be after received_from")])
    where = []
    if received_from:
        where.append(C.received_at >= received_from)
    if received_to:
        where.append(C.received_at < received_to)
    return where


def _may_act(principal: Principal, case: Case) -> bool:
    """A limited key acts only on cases its department leads, in its jurisdictions, from its
    channels (a cooperating department sees a case but does not move it)."""
    code = case.jurisdiction_code or ""
    return ((not principal.departments or case.lead_department in principal.departments)
            and (not principal.jurisdictions
                 or any(code.startswith(j) for j in principal.jurisdictions))
            and (not principal.channels or case.channel in principal.channels))


async def _visible_case(session: AsyncSession, case_id: str, principal: Principal) -> Case:
    if NUL in case_id:
        raise ApiError(404, "not_found", "no such case")
    query = select(Case).where(C.case_id == case_id)
    visible = store.visible_to(principal)
    if visible is not None:
        query = query.where(visible)
    case = (await session.execute(query)).scalars().first()
    if case is None:
        raise ApiError(404, "not_found", f"no case {case_id}")
    return case


def _not_a_number(value: object) -> object:
    # Pydantic would read "0" or "-1470" as seconds since 1970: a date, not what anyone meant
    # (found by fuzzing). Dates are ISO 8601 here, as documented.
    if not isinstance(value, str):
        return value
    try:
        float(value)
    except ValueError:
        return value
    raise ValueError("not an ISO 8601 date or time")


DateParam = Annotated[datetime | None, BeforeValidator(_not_a_number), Query(
    description="ISO 8601 date or time; without an offset it is China Standard Time (+08:00)")]

TRANSITIONS_DESCRIPTION = """\
Move a case one step along its lifecycle (DOMAIN.md). Send the case's `version` as you read
it in `expected_version`: if the case changed since, the answer is 409 with
`current_version`, and nothing changes. A step the state machine does not allow from the
case's status is 409 naming the allowed ones (`allowed`). The data a step needs (agreement
for `resolved`, failure_reason for `failed`, referral for `referred`, visit_notes for
`visited`, satisfaction for `rated`) missing is 422 with the fields.

`reported`, `routed` and `awaiting_dispatch` are set by events, never here: after
`escalated` the router routes the case again, to the tier above, and it comes back `routed`
with the new tier and lead department. `referred` closes the case at once: the answer
carries both steps (`referred`, then `closed` by the system) and the case is at `closed`.

**Return (退回).** The lead department returns a case it should not have (from `routed` or
`accepted`, before mediation starts): `to_status` `returned` with a `reason` (required) and
optionally `data.suggested_department`. The router routes it again at the same tier, never
to a department that has returned it; after two returns, or when no department is left, the
case waits in the dispatch queue (`awaiting_dispatch`, `GET /v1/cases?status=
awaiting_dispatch`) for a dispatcher (`POST /v1/cases/{case_id}/assignment`).

**Return to the hotline (退单).** A dispatcher (scope `cases:dispatch` besides this one's)
sends a 12345 case back to the hotline with `to_status` `returned_to_source` and a `reason`:
the case closes here at once (both steps in the answer) and the hotline's callback receives
the return with the reason.
"""

ASSIGNMENT_DESCRIPTION = """\
A dispatcher's decision (改派 reassignment, or 人工分派 from the dispatch queue): the case is
routed at once to `lead_department` (with `cooperating_departments`) at `tier`, in a new
routing round, and the decision is published as a routed event that every service applies as
it applies the router's (the router keeps it beside its own decisions; the department that
lost the case is told it was withdrawn, the new one that it was assigned). The acceptance
limit starts again for the new department; the overall limit keeps running.

Scope `cases:dispatch`, limited like any key to jurisdictions and channels; a key limited to
departments may not assign (403). Possible from `routed`, `accepted` and `awaiting_dispatch`
(409 `illegal_transition` otherwise). Send the case's `version` in `expected_version`: 409
`version_conflict` if it changed since. An unknown department or a missing `reason` is 422.
"""


def _stats_description() -> str:
    lines = [
        "The figures the centres report, over the cases **received** in "
        "[received_from, received_to) and visible to the key, each counted in its state now. "
        "Grouped by the `group_by` dimensions (repeat the parameter or separate by commas; "
        "at most one period): periods are China Standard Time, weeks start on Monday "
        "(labelled by that Monday), `department` is the lead department, `jurisdiction` the "
        "case's division code (or its county, town or village with `jurisdiction_level`). "
        "Counted by the database (GROUP BY); rates are null when their denominator is 0.",
        "", "Definitions:", ""]
    lines += [f"- `{name}`: {text}" for name, text in DEFINITIONS.items()]
    lines += ["", "With `format=csv` or `Accept: text/csv`: a CSV (UTF-8 with BOM, for "
              "spreadsheets) with Chinese and English column headers and a 合计 total row."]
    return "\n".join(lines)


def build_router() -> APIRouter:
    router = APIRouter()

    @router.get("/v1/cases/{case_id}", response_model=CaseView, tags=["cases"],
                responses=error_responses(401, 403, 404),
                summary="A case with its report (parties masked, place, photos, the channel's "
                "fields), routing decision, full history and supervision",
                description="What of the report a key is shown depends on its limits: "
                "`report.withheld` names what it is not (docs/mediation.md, \"Who sees what "
                "in a case\"). Phone and id numbers are masked; the clear value is intake's "
                "`POST /v1/intake/cases/{case_id}/personal-data`, when "
                "`personal_data_revealable`.")
    async def get_case(case_id: str, request: Request,
                       principal: Principal = require(Scope.CASES_READ)) -> CaseView:
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session:
            case = await _visible_case(session, case_id, principal)
            history = (await session.execute(
                select(CaseHistory).where(H.case_id == case_id)
                .order_by(H.at, H.id))).scalars().all()
            supervision = (await session.execute(
                select(SupervisionRecord).where(SV.case_id == case_id)
                .order_by(SV.emitted_at, SV.id))).scalars().all()
            session.add(store.audit(principal, AuditAction.READ, case_id))
            await session.commit()
        summary = _summary(case, datetime.now(UTC))
        who = audience(principal, case.lead_department)
        erased = case.personal_data_erased_at is not None
        return CaseView(
            **summary.model_dump(), text=case.text, decision=case.decision,
            report=case_report(case.report, who),
            personal_data_revealable=revealable(principal, who, case.report, erased),
            personal_data_erased_at=case.personal_data_erased_at,
            allowed_transitions=sorted(
                s for s in staff_targets(Status(case.status))
                # 退单 is for 12345 cases only (their hotline takes them back).
                if s is not Status.RETURNED_TO_SOURCE or case.channel == Channel.HOTLINE_12345),
            history=[_history(h) for h in history],
            supervision=[SupervisionEntry.model_validate(s, from_attributes=True)
                         for s in supervision])

    @router.get("/v1/cases", response_model=CasePage, tags=["cases"],
                responses={**error_responses(401, 403, 422), 200: {
                    "content": {GEOJSON: {"schema": case_geojson_schema()}},
                    "description": "The page of cases, as JSON or GeoJSON"}},
                summary="Cases, newest first, filtered, with cursor pagination",
                description=CASES_DESCRIPTION)
    async def list_cases(
        request: Request,
        status: Status | None = None,
        channel: Channel | None = None,
        category: Category | None = None,
        risk: Risk | None = None,
        tier: Tier | None = None,
        department: Annotated[Department | None, Query(
            description="Lead or cooperating department")] = None,
        lead_department: Department | None = None,
        jurisdiction: Annotated[str | None, Query(
            pattern=r"^[0-9]{1,15}$", description="A division or grid code: the cases worked "
            "there or below (the case's jurisdiction is within it)")] = None,
        place: Annotated[str | None, Query(
            pattern=r"^[0-9]{1,15}$", description="A division or grid code: the cases located "
            "there or below, whatever tier works them")] = None,
        bbox: Annotated[str | None, Query(
            max_length=200, pattern=TEXT_PATTERN,
            description="min_lon,min_lat,max_lon,max_lat in WGS 84 degrees: the cases whose "
            "point on the map lies in the box", examples=["120.22,29.72,120.26,29.78"])
        ] = None,
        format: Annotated[Literal["json", "geojson"] | None, Query(
            description="geojson: a GeoJSON FeatureCollection of the located cases (also when "
            "the Accept header asks for application/geo+json)")] = None,
        overdue: Annotated[bool | None, Query(
            description="true: a running time limit is past its deadline; false: none is")
        ] = None,
        review: Annotated[bool | None, Query(
            description="true: flagged for review (待研判), the dispatchers' queue of doubtful "
            "routings; false: not flagged")] = None,
        supervised: Annotated[bool | None, Query(
            description="true: a supervision (督办) level was emitted in the case's current "
            "routing round (see supervision_level); false: none was")] = None,
        received_from: DateParam = None,
        received_to: DateParam = None,
        text: Annotated[str | None, Query(min_length=1, max_length=200, pattern=TEXT_PATTERN,
                                          description="Words in the report's text")] = None,
        external_id: Annotated[str | None, Query(max_length=128, pattern=TEXT_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=512,
                                            description="next_cursor of the previous page")] = None,
        principal: Principal = require(Scope.CASES_READ),
    ) -> CasePage | Response:
        runtime: Runtime = request.app.state.runtime
        now = datetime.now(UTC)
        query = select(Case)
        for column, value in ((C.status, status), (C.channel, channel),
                              (C.category, category), (C.risk, risk), (C.tier, tier),
                              (C.lead_department, lead_department),
                              (C.external_id, external_id)):
            if value is not None:
                query = query.where(column == value)
        if department is not None:
            query = query.where(store.involves_department(department))
        if jurisdiction is not None:
            query = query.where(store.within_jurisdictions({jurisdiction}))
        if place is not None:
            query = query.where(store.subtree(C.place_code, place))
        if bbox is not None:
            query = query.where(_box(bbox))
        geojson = format == "geojson" or (format is None
                                          and GEOJSON in request.headers.get("accept", ""))
        if geojson:
            # A map draws points: the cases without one are left out, before paging.
            query = query.where(C.lat.is_not(None), C.lon.is_not(None))
        if overdue is not None:
            query = query.where(store.overdue(now) if overdue else ~store.overdue(now))
        if review is not None:
            query = query.where(C.review_flagged == review)
        if supervised is not None:
            query = query.where(store.supervised() if supervised else ~store.supervised())
        if text is not None:
            # Texts hold numbers masked: a number searched for is searched for masked too
            # (139-1234-5678 finds 139****5678), and is never kept in clear, audit included.
            text = scrub(text)
            query = query.where(C.text.contains(text, autoescape=True))
        query = query.where(*_received_between(received_from, received_to))
        visible = store.visible_to(principal)
        if visible is not None:
            query = query.where(visible)
        if cursor:
            at, case_id = _decode_cursor(cursor)
            # A row comparison, not `received_at < at OR (= at AND case_id < id)`: PostgreSQL
            # starts the index scan at the cursor with it, where the OR form read every newer
            # case first (a deep page cost as much as the pages before it).
            query = query.where(tuple_(C.received_at, C.case_id) < tuple_(
                literal(at, C.received_at.type), literal(case_id, C.case_id.type)))
        query = query.order_by(C.received_at.desc(), C.case_id.desc())
        filters = {name: value for name, value in (
            ("status", status), ("channel", channel), ("category", category), ("risk", risk),
            ("tier", tier), ("department", department), ("lead_department", lead_department),
            ("jurisdiction", jurisdiction), ("place", place), ("bbox", bbox),
            ("format", "geojson" if geojson else None), ("overdue", overdue), ("review", review),
            ("supervised", supervised),
            ("received_from", received_from), ("received_to", received_to), ("text", text),
            ("external_id", external_id), ("cursor", cursor)) if value is not None}
        async with runtime.sessions() as session:
            cases = (await session.execute(query.limit(limit + 1))).scalars().all()
            page = cases[:limit]
            session.add(store.audit(principal, AuditAction.LIST, query=jsonable(filters),
                                    count=len(page)))
            await session.commit()
        next_cursor = _encode_cursor(page[-1]) if len(cases) > limit else None
        if geojson:
            return Response(orjson.dumps({
                "type": "FeatureCollection", "features": [_feature(c, now) for c in page],
                "next_cursor": next_cursor}), media_type=GEOJSON)
        return CasePage(items=[_summary(c, now) for c in page], next_cursor=next_cursor)

    @router.post("/v1/cases/{case_id}/transitions", response_model=TransitionResult,
                 tags=["cases"], responses=error_responses(401, 403, 404, 409, 422),
                 summary="Move a case one step along its lifecycle",
                 description=TRANSITIONS_DESCRIPTION)
    async def transition(case_id: str, body: TransitionRequest, request: Request,
                         principal: Principal = require(Scope.CASES_WRITE)
                         ) -> TransitionResult:
        runtime: Runtime = request.app.state.runtime
        now = datetime.now(UTC)
        try:
            async with runtime.sessions() as session, session.begin():
                case = await _visible_case(session, case_id, principal)
                if not _may_act(principal, case):
                    raise ApiError(403, "forbidden", "this key may read the case but only its "
                                   "lead department's keys may move it")
                if body.to_status in DISPATCHER_ONLY and not principal.allows(
                        Scope.CASES_DISPATCH):
                    raise ApiError(403, "forbidden", f"'{body.to_status.value}' is a "
                                   "dispatcher's step: this key lacks the 'cases:dispatch' "
                                   "scope")
                from_status = case.status
                steps = await transition_case(session, case, body, now)
                if case.status == Status.CLOSED:
                    # Reports merged into it (合并) close with it: each source is told.
                    await close_merged(session, case, now)
                session.add(store.audit(
                    principal, AuditAction.TRANSITION, case_id, from_status=from_status,
                    to_status=[step["to_status"] for step in steps],
                    version=case.version, actor=steps[0]["actor"]))
                result = TransitionResult(case=_summary(case, now),
                                          transitions=[_history(s) for s in steps])
        except (StepDataInvalid, StaleVersion, IllegalTransition) as exc:
            raise refused(exc) from None
        runtime.relay.wake()
        return result

    @router.post("/v1/cases/{case_id}/assignment", response_model=TransitionResult,
                 tags=["cases"], responses=error_responses(401, 403, 404, 409, 422),
                 summary="Assign a case by hand: reassign (改派) or dispatch (人工分派)",
                 description=ASSIGNMENT_DESCRIPTION)
    async def assignment(case_id: str, body: AssignmentRequest, request: Request,
                         principal: Principal = require(Scope.CASES_DISPATCH)
                         ) -> TransitionResult:
        runtime: Runtime = request.app.state.runtime
        if principal.departments:
            raise ApiError(403, "forbidden", "a department's key may return a case, not "
                           "assign it: assignment is the dispatchers'")
        overrides = limit_overrides(runtime.settings)
        now = datetime.now(UTC)
        actor = body.actor or principal.name
        try:
            async with runtime.sessions() as session, session.begin():
                case = await _visible_case(session, case_id, principal)
                if not _may_act(principal, case):
                    raise ApiError(403, "forbidden", "this key may not act on the case")
                from_status, previous_lead = case.status, case.lead_department
                step, routed = await assign_case(session, case, body, actor, now, overrides)
                session.add(store.audit(
                    principal, AuditAction.ASSIGN, case_id, from_status=from_status,
                    kind=routed.correction.kind.value if routed.correction else None,
                    previous_lead_department=previous_lead,
                    lead_department=body.lead_department.value, tier=body.tier.value,
                    reason=body.reason, version=case.version, actor=actor))
                result = TransitionResult(case=_summary(case, now), transitions=[_history(step)])
        except StaleVersion as exc:
            raise refused(exc) from None
        except NotAssignable as exc:
            raise ApiError(409, "illegal_transition", str(exc), extra={
                "current_status": exc.current.value, "allowed": exc.allowed}) from None
        runtime.relay.wake()
        return result

    @router.get("/v1/stats", response_model=StatsReport, tags=["statistics"],
                responses={**error_responses(401, 403, 422),
                           200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                                 "description": "The report, as JSON or CSV"}},
                summary="化解率, 办结率, 按期办结率, 满意度, 分流率, 调处成功率, 重复率",
                description=_stats_description())
    async def stats(
        request: Request,
        group_by: Annotated[list[str], Query(
            description="channel, tier, department, category, jurisdiction, routed_department "
            "(the router's first lead department), lead_rule (the rule that chose it), day, "
            "week, month")
        ] = [],  # noqa: B006 - FastAPI copies defaults
        received_from: DateParam = None,
        received_to: DateParam = None,
        channel: Channel | None = None,
        tier: Tier | None = None,
        department: Annotated[Department | None, Query(description="Lead department")] = None,
        category: Category | None = None,
        jurisdiction: Annotated[str | None, Query(pattern=r"^[0-9]{1,15}$")] = None,
        jurisdiction_level: Annotated[Literal["county", "town", "village"] | None, Query(
            description="Group jurisdictions at this level (by code prefix)")] = None,
        format: Annotated[Literal["json", "csv"] | None, Query(
            description="csv for the monthly report; default: JSON, or CSV when the "
            "Accept header asks for text/csv")] = None,
        principal: Principal = require(Scope.STATS_READ),
    ) -> Any:
        runtime: Runtime = request.app.state.runtime
        dimensions = _dimensions(group_by)
        where = _received_between(received_from, received_to)
        for column, value in ((C.channel, channel), (C.tier, tier),
                              (C.lead_department, department), (C.category, category)):
            if value is not None:
                where.append(column == value)
        if jurisdiction is not None:
            where.append(store.within_jurisdictions({jurisdiction}))
        visible = store.visible_to(principal)
        if visible is not None:
            where.append(visible)
        async with runtime.sessions() as session:
            if dimensions:
                grouped = await store.count_cases(session, dimensions, where,
                                                  jurisdiction_level)
                total = total_of([counts for _, counts in grouped])
            else:
                grouped = []
                [(_, total)] = await store.count_cases(session, [], where)
        report = StatsReport(group_by=dimensions,
                             received_from=_aware(received_from, "received_from"),
                             received_to=_aware(received_to, "received_to"),
                             rows=[_stats_row(g, c) for g, c in grouped],
                             total=_stats_row({}, total))
        wants_csv = format == "csv" or (format is None and "text/csv" in
                                        request.headers.get("accept", ""))
        if wants_csv:
            return Response(_csv(report), media_type="text/csv; charset=utf-8", headers={
                "Content-Disposition": f'attachment; filename="fengqiao-stats-'
                                       f'{date.today().isoformat()}.csv"'})
        return report

    @router.get("/v1/audit", response_model=AuditPage, tags=["audit"],
                responses=error_responses(401, 403, 422),
                summary="Who read or changed which case, newest first",
                description="One entry per case read (GET /v1/cases/{case_id}), per list of "
                "cases (its filters and how many cases it answered) and per transition, "
                "with the API key that made the request. Scope `audit:read` (or admin); a key "
                "limited to departments, jurisdictions or channels sees the entries of the "
                "cases it may see, and no lists.")
    async def audit_log(
        request: Request,
        case_id: Annotated[str | None, Query(max_length=64, pattern=TEXT_PATTERN)] = None,
        key_id: Annotated[str | None, Query(max_length=32, pattern=TEXT_PATTERN)] = None,
        action: AuditAction | None = None,
        at_from: DateParam = None,
        at_to: DateParam = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        cursor: Annotated[int | None, Query(ge=1, le=2**63 - 1,
                                            description="next_cursor of the page before")
                          ] = None,
        principal: Principal = require(Scope.AUDIT_READ),
    ) -> AuditPage:
        runtime: Runtime = request.app.state.runtime
        query = select(AuditRecord)
        for column, value in ((AU.case_id, case_id), (AU.key_id, key_id),
                              (AU.action, action)):
            if value is not None:
                query = query.where(column == value)
        if (since := _aware(at_from, "at_from")) is not None:
            query = query.where(AU.at >= since)
        if (until := _aware(at_to, "at_to")) is not None:
            query = query.where(AU.at < until)
        if cursor is not None:
            query = query.where(AU.id < cursor)
        visible = store.visible_to(principal)
        if visible is not None:
            query = query.where(AU.case_id.in_(select(C.case_id).where(visible)))
        async with runtime.sessions() as session:
            rows = (await session.execute(
                query.order_by(AU.id.desc()).limit(limit + 1))).scalars().all()
        page = rows[:limit]
        return AuditPage(items=[AuditEntry.model_validate(r, from_attributes=True)
                                for r in page],
                         next_cursor=page[-1].id if len(rows) > limit else None)

    return router


def _dimensions(group_by: list[str]) -> list[StatsDimension]:
    names = [n.strip() for value in group_by for n in value.split(",") if n.strip()]
    known = {d.value for d in StatsDimension}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ApiError(422, "validation_failed", f"unknown group_by: {', '.join(unknown)}",
                       fields=[FieldError(field="group_by", reason="one of " + ", ".join(
                           d.value for d in StatsDimension))])
    dimensions = list(dict.fromkeys(StatsDimension(n) for n in names))
    if len([d for d in dimensions if d in PERIODS]) > 1:
        raise ApiError(422, "validation_failed", "group by one period at most", fields=[
            FieldError(field="group_by", reason="day, week and month exclude each other")])
    return dimensions


def _stats_row(group: dict[str, str | None], counts: CaseCounts) -> StatsRow:
    return StatsRow(group=group, **counts.__dict__, **figures(counts).__dict__)


DIMENSION_LABELS_ZH = {"channel": "渠道", "tier": "层级", "department": "牵头部门",
                       "category": "纠纷类别", "jurisdiction": "属地",
                       "routed_department": "初次分派部门", "lead_rule": "分派规则",
                       "owner": "包案领导", "day": "日期",
                       "week": "周(起始日)", "month": "月份"}


def _csv(report: StatsReport) -> str:
    """One header row, each column named in Chinese and English ("化解率 resolution_rate")."""
    out = io.StringIO()
    out.write("\ufeff")  # so spreadsheets read UTF-8
    writer = csv.writer(out, lineterminator="\r\n")
    dims = [d.value for d in report.group_by]
    columns = [*COUNT_NAMES, *FIGURE_NAMES]
    writer.writerow([f"{DIMENSION_LABELS_ZH[d]} {d}" for d in dims]
                    + [f"{LABELS_ZH[c]} {c}" for c in columns])

    def cells(row: StatsRow) -> list[str]:
        values = [getattr(row, c) for c in columns]
        return ["" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)
                for v in values]

    for row in report.rows:
        writer.writerow([row.group.get(d) or "" for d in dims] + cells(row))
    writer.writerow((["合计 total"] + [""] * (len(dims) - 1) if dims else []) + cells(report.total))
    return out.getvalue()
