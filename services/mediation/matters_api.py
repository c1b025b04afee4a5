"""Mediation's REST routes for repeat reports and leaders' work: related cases (关联),
supervision notices by hand (督办 / 催办) and their answers (反馈), leader ownership
(领导包案) and the leader's queue. Included by main.py beside api.py's routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from contracts.api_matters import (
    MergeRequest,
    MergeResult,
    NoticeAnswer,
    NoticeList,
    NoticeRequest,
    NoticeView,
    OwnedCases,
    OwnershipRequest,
    RelatedCase,
    RelatedCases,
    UnmergeRequest,
)
from contracts.api_mediation import AuditAction, CaseSummary
from kit.auth import Principal, Scope, require
from kit.errors import ApiError, FieldError, error_responses
from kit.runtime import Runtime
from services.mediation import merging, store, supervision_notices
from services.mediation.api import _may_act, _summary, _visible_case
from services.mediation.domain.lifecycle import OPEN_STATUSES
from services.mediation.matter_tables import N, SupervisionNotice
from services.mediation.related import related_cases
from services.mediation.store import C, Case

NOTICE_DESCRIPTION = """\
A leader (scope `cases:lead`, limited like any key to jurisdictions and channels) issues a
supervision notice on a case: `level` reminder (提示), urge (催办), supervise (督办) or
listed (挂牌督办), what is `asked`, and `answer_by`. The case's lead department answers
(反馈) with `POST .../supervision-notices/{notice_id}/answer`. Unanswered by `answer_by`,
the notice rises one level with as long again to answer, and the leader is told (a
`case.supervision.v1` event with `notice.action` `raised`, which notify delivers to the
webhooks subscribed to `supervision`). Notices are in the case's history, the audit log
and the events; the case's status and version do not change. 422 for an `answer_by` not in
the future or a case already closed."""


def _refused(exc: supervision_notices.NoticeRefused, status: int) -> ApiError:
    field = exc.field or "body"
    return ApiError(status, "validation_failed" if status == 422 else "conflict", str(exc),
                    fields=[FieldError(field=field, reason=str(exc))])


def build_matters_router() -> APIRouter:
    router = APIRouter()

    @router.get("/v1/cases/{case_id}/related", response_model=RelatedCases, tags=["cases"],
                responses=error_responses(401, 403, 404),
                summary="The other reports of the case's matter (关联)",
                description="Cases with the same reporter or party (by the keyed hash of a "
                "phone or id number), the same address or a place within 100 m, within 90 "
                "days; with the same external id; merged into it or it into them. Each "
                "with its status, category and department, and why it is related. Only "
                "cases the key may see. Scope `cases:read`; audited as a read.")
    async def related(case_id: str, request: Request,
                      principal: Principal = require(Scope.CASES_READ)) -> RelatedCases:
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session:
            case = await _visible_case(session, case_id, principal)
            found = await related_cases(session, case, principal)
            session.add(store.audit(principal, AuditAction.READ, case_id, related=len(found)))
            await session.commit()
        return RelatedCases(case_id=case_id, items=[RelatedCase(
            case_id=r.case.case_id, channel=r.case.channel, external_id=r.case.external_id,
            received_at=r.case.received_at, status=r.case.status, category=r.case.category,
            lead_department=r.case.lead_department, merged_into=r.case.merged_into,
            relations=sorted(r.relations)) for r in found])

    @router.post("/v1/cases/{case_id}/supervision-notices", response_model=NoticeView,
                 status_code=201, tags=["supervision"],
                 responses=error_responses(401, 403, 404, 422),
                 summary="Issue a supervision notice (督办 / 催办) on a case",
                 description=NOTICE_DESCRIPTION)
    async def issue_notice(case_id: str, body: NoticeRequest, request: Request,
                           principal: Principal = require(Scope.CASES_LEAD)) -> NoticeView:
        runtime: Runtime = request.app.state.runtime
        now = datetime.now(UTC)
        actor = body.actor or principal.name
        try:
            async with runtime.sessions() as session, session.begin():
                case = await _visible_case(session, case_id, principal)
                notice = await supervision_notices.issue(
                    session, case, level=body.level, asked=body.asked,
                    answer_by=body.answer_by.astimezone(UTC), actor=actor,
                    key_id=principal.key_id, now=now)
                session.add(store.audit(principal, AuditAction.SUPERVISE, case_id,
                                        notice_id=notice.notice_id, level=body.level.value,
                                        answer_by=notice.answer_by.isoformat(), actor=actor))
                result = supervision_notices.view(notice)
        except supervision_notices.NoticeRefused as exc:
            raise _refused(exc, 422) from None
        runtime.relay.wake()
        return result

    @router.get("/v1/cases/{case_id}/supervision-notices", response_model=NoticeList,
                tags=["supervision"], responses=error_responses(401, 403, 404),
                summary="The supervision notices of a case, oldest first")
    async def list_notices(case_id: str, request: Request,
                           principal: Principal = require(Scope.CASES_READ)) -> NoticeList:
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session:
            await _visible_case(session, case_id, principal)
            notices = (await session.execute(
                select(SupervisionNotice).where(N.case_id == case_id)
                .order_by(N.issued_at, N.notice_id))).scalars().all()
        return NoticeList(items=[supervision_notices.view(n) for n in notices])

    @router.post("/v1/cases/{case_id}/supervision-notices/{notice_id}/answer",
                 response_model=NoticeView, tags=["supervision"],
                 responses=error_responses(401, 403, 404, 409, 422),
                 summary="Answer a supervision notice (反馈): the lead department's",
                 description="Scope `cases:write`; a key limited to departments answers only "
                 "for the case's lead department (403 otherwise). 409 when the notice was "
                 "answered already. An answer after `answer_by` is taken and counted late.")
    async def answer_notice(case_id: str, notice_id: str, body: NoticeAnswer,
                            request: Request,
                            principal: Principal = require(Scope.CASES_WRITE)) -> NoticeView:
        runtime: Runtime = request.app.state.runtime
        now = datetime.now(UTC)
        actor = body.actor or principal.name
        try:
            async with runtime.sessions() as session, session.begin():
                case = await _visible_case(session, case_id, principal)
                if not _may_act(principal, case):
                    raise ApiError(403, "forbidden", "only the lead department's keys answer "
                                   "its supervision notices")
                notice = await supervision_notices.answer(session, case, notice_id,
                                                          text=body.answer, actor=actor,
                                                          now=now)
                session.add(store.audit(principal, AuditAction.ANSWER, case_id,
                                        notice_id=notice_id, on_time=notice.answered_on_time,
                                        actor=actor))
                result = supervision_notices.view(notice)
        except LookupError:
            raise ApiError(404, "not_found", f"no notice {notice_id} on case {case_id}"
                           ) from None
        except supervision_notices.NoticeRefused as exc:
            raise _refused(exc, 409) from None
        runtime.relay.wake()
        return result

    @router.post("/v1/cases/{case_id}/ownership", response_model=CaseSummary,
                 tags=["supervision"], responses=error_responses(401, 403, 404, 409, 422),
                 summary="A leader takes ownership of a case (领导包案), or gives it up",
                 description="Scope `cases:lead`, within the key's jurisdictions and "
                 "channels. The owner is on the case, in its events (`owner`) and in the "
                 "figures (`group_by=owner`). 409 `owned` naming the `owner` when another "
                 "leader owns it; giving up a case one does not own is 409 too. Audited; "
                 "the case's history says so; its version does not change.")
    async def ownership(case_id: str, body: OwnershipRequest, request: Request,
                        principal: Principal = require(Scope.CASES_LEAD)) -> CaseSummary:
        runtime: Runtime = request.app.state.runtime
        now = datetime.now(UTC)
        async with runtime.sessions() as session, session.begin():
            case = (await session.execute(
                select(Case).where(C.case_id == (await _visible_case(
                    session, case_id, principal)).case_id).with_for_update())).scalars().one()
            mine = case.owner_key_id == principal.key_id
            if body.release:
                if not mine:
                    raise ApiError(409, "not_owner", "this key does not own the case",
                                   fields=[FieldError(field="release",
                                                      reason="not the owner's key")],
                                   extra={"owner": case.owner})
                values: dict[str, object] = {"owner": None, "owner_key_id": None}
                reason = f"{principal.name} 不再包案"
            else:
                if case.owner_key_id is not None and not mine:
                    raise ApiError(409, "owned", f"the case is owned by {case.owner}",
                                   fields=[FieldError(field="owner", reason="owned already")],
                                   extra={"owner": case.owner})
                values = {"owner": principal.name[:128], "owner_key_id": principal.key_id[:32],
                          "owner_proposed": False}
                reason = f"{principal.name} 包案"
            case.sqlmodel_update(values)
            session.add(case)
            await session.execute(store.HISTORY.insert().values(
                case_id=case_id, version=None, from_status=case.status, to_status=case.status,
                actor=principal.name[:128], reason=reason, at=now,
                data={"owner": values["owner"]}))
            session.add(store.audit(principal, AuditAction.OWN, case_id,
                                    release=body.release, owner=values["owner"]))
            await session.flush()
            result = _summary(case, now)
        return result

    @router.get("/v1/owned-cases", response_model=OwnedCases, tags=["supervision"],
                responses=error_responses(401, 403, 422),
                summary="A leader's queue: the cases this key owns, or those proposed",
                description="Scope `cases:lead`. Without `proposed`: the open cases this key "
                "owns (领导包案), red first, then by the overall deadline. With "
                "`proposed=true`: open cases nobody owns for which a leader is proposed (red, "
                "or two or more prior related cases), within the key's limits.")
    async def owned_cases(
        request: Request,
        proposed: Annotated[bool, Query(description="true: proposed, unowned cases")] = False,
        limit: Annotated[int, Query(ge=1, le=200)] = 100,
        principal: Principal = require(Scope.CASES_LEAD),
    ) -> OwnedCases:
        runtime: Runtime = request.app.state.runtime
        now = datetime.now(UTC)
        query = select(Case).where(C.status.in_(sorted(OPEN_STATUSES)))
        if proposed:
            query = query.where(C.owner_proposed.is_(True), C.owner_key_id.is_(None))
        else:
            query = query.where(C.owner_key_id == principal.key_id)
        visible = store.visible_to(principal)
        if visible is not None:
            query = query.where(visible)
        query = query.order_by((C.risk == "red").desc(), C.resolve_by, C.case_id).limit(limit)
        async with runtime.sessions() as session:
            cases = (await session.execute(query)).scalars().all()
        return OwnedCases(items=[_summary(c, now) for c in cases])

    @router.post("/v1/cases/{case_id}/merge", response_model=MergeResult, tags=["cases"],
                 responses=error_responses(401, 403, 404, 409, 422),
                 summary="Merge duplicate reports of one matter into this main case (合并)",
                 description=MERGE_DESCRIPTION)
    async def merge_reports(case_id: str, body: MergeRequest, request: Request,
                            principal: Principal = require(Scope.CASES_DISPATCH)
                            ) -> MergeResult:
        runtime: Runtime = request.app.state.runtime
        _dispatcher(principal)
        now = datetime.now(UTC)
        actor = body.actor or principal.name
        try:
            async with runtime.sessions() as session, session.begin():
                main = await _visible_case(session, case_id, principal)
                if not _may_act(principal, main):
                    raise ApiError(403, "forbidden", "this key may not act on the case")
                query = select(C.case_id).where(C.case_id.in_(sorted(body.case_ids)))
                visible = store.visible_to(principal)
                if visible is not None:
                    query = query.where(visible)
                seen = set((await session.execute(query)).scalars().all())
                merged = await merging.merge(session, main, body.case_ids, seen, actor=actor,
                                             reason=body.reason, at=now)
                session.add(store.audit(principal, AuditAction.MERGE, case_id,
                                        merged=[c.case_id for c in merged], reason=body.reason,
                                        actor=actor))
                result = MergeResult(case=_summary(main, now),
                                     merged=[_summary(c, now) for c in merged])
        except merging.MergeRefused as exc:
            raise _merge_refused(exc) from None
        runtime.relay.wake()
        return result

    @router.post("/v1/cases/{case_id}/unmerge", response_model=CaseSummary, tags=["cases"],
                 responses=error_responses(401, 403, 404, 409, 422),
                 summary="Take a merged report out of its matter (撤销合并)",
                 description="Scope `cases:dispatch`, the same rules as merging. The report "
                 "goes back to the status it had before the merge, its clocks run again; "
                 "409 when it is not merged (or its main case has closed, and it with it).")
    async def unmerge_report(case_id: str, body: UnmergeRequest, request: Request,
                             principal: Principal = require(Scope.CASES_DISPATCH)
                             ) -> CaseSummary:
        runtime: Runtime = request.app.state.runtime
        _dispatcher(principal)
        now = datetime.now(UTC)
        actor = body.actor or principal.name
        try:
            async with runtime.sessions() as session, session.begin():
                case = await _visible_case(session, case_id, principal)
                if not _may_act(principal, case):
                    raise ApiError(403, "forbidden", "this key may not act on the case")
                main_id = case.merged_into
                await merging.unmerge(session, case, actor=actor, reason=body.reason, at=now)
                session.add(store.audit(principal, AuditAction.UNMERGE, case_id,
                                        merged_into=main_id, reason=body.reason, actor=actor))
                result = _summary(case, now)
        except merging.MergeRefused as exc:
            raise _merge_refused(exc) from None
        runtime.relay.wake()
        return result

    return router


MERGE_DESCRIPTION = """A dispatcher (scope `cases:dispatch`, limited like any key to jurisdictions and channels; a
key limited to departments may not merge: 403) merges duplicate reports of one matter into
this main case. Each report in `case_ids` goes to status `merged` with `merged_into` set
(its history says so, a `case.lifecycle.v1` event is published); new steps happen on the
main case. When the main case closes, every report merged into it closes too, with the
main case's outcome, so each source is fed back: each 12345 order gets its own result on
its callback, each reporter an SMS. The figures count the matter once (`received`) and
say how many reports it had (`reports`, `merged`). Two or more reports merged propose a
leader owner (领导包案).

422 naming `case_ids[i]` for a case the key cannot see or the main case itself; 409 naming
it for a report not open (closed, or merged already) or one that other reports were merged
into; 409 naming `case_id` when the main case is not open."""


def _dispatcher(principal: Principal) -> None:
    if principal.departments:
        raise ApiError(403, "forbidden", "a department's key may not merge reports: merging "
                       "is the dispatchers'")


def _merge_refused(exc: merging.MergeRefused) -> ApiError:
    extra = {"current_status": exc.current_status} if exc.current_status else None
    return ApiError(exc.status, "validation_failed" if exc.status == 422 else "conflict",
                    str(exc), fields=[FieldError(field=exc.field, reason=str(exc))],
                    extra=extra)
