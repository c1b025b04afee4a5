"""The routes of a 12345 work order's lifecycle between acceptance and result: progress
notes and extension requests by the lead department (on the case), and, on the order with
the hotline's own key, the hotline's answer to an extension and its updates after the
order (补充, 催办, a changed deadline, 回访结果)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.api_mediation import (
    AuditAction,
    ExtensionAnswer,
    ExtensionRequest,
    HotlineUpdate,
    HotlineUpdateResult,
    ProgressNoteRequest,
    TransitionResult,
)
from contracts.enums import Channel
from kit.auth import Principal, Scope, require
from kit.errors import ApiError, FieldError, error_responses
from kit.runtime import Runtime
from services.mediation import hotline_updates, store
from services.mediation.api import _history, _may_act, _summary, _visible_case, refused
from services.mediation.domain.lifecycle import IllegalTransition, StaleVersion, StepDataInvalid
from services.mediation.hotline_steps import (
    StepConflict,
    StepNotNow,
    add_progress_note,
    answer_extension,
    request_extension,
)
from services.mediation.store import C, Case

HOTLINE = Channel.HOTLINE_12345

NOTES_DESCRIPTION = """\
A progress note (过程反馈): what the lead department has done so far. It is a step in the
case's history (its `activity` `progress_note`, the status unchanged, the version + 1) and
goes to the 12345 hotline's callback, in order with the case's other steps. Scope
`cases:write`; only the lead department's keys (403 otherwise). From `routed`, `accepted`,
`in_mediation`, `resolved` or `failed` (409 `illegal_transition` otherwise).
`expected_version` is optional: given and stale, 409 `version_conflict`."""

EXTENSION_DESCRIPTION = """\
An extension request (延期申请) for a 12345 work order: the lead department asks the hotline
for a later resolution date, with a reason. The hotline's callback gets it with its
`extension_id`; the hotline answers with `POST /v1/hotline/orders/{order_no}/
extension-decision`. One request at a time (409 `extension_pending`); only 12345 cases (409
`not_a_hotline_order`); while the resolution limit runs: `routed`, `accepted`,
`in_mediation` (409 `illegal_transition`). `requested_resolve_by` must be after the case's
`resolve_by` (422). Scope `cases:write`, the lead department's keys only (403)."""

DECISION_DESCRIPTION = """\
The hotline's answer to an extension request (延期审核), with the hotline's own key: scope
`intake:write` (the key it posts orders with), for the `hotline_12345` channel (a key
limited to other channels: 403). `approved` moves the case's resolution limit to the date
asked for (or `resolve_by`), and the case's `resolve_by_source` becomes `extension`;
`denied` leaves it. The callback hears of the answer too, in order. Sending the same answer
again answers 200 and changes nothing; another answer to a request already answered is
409 `extension_answered` naming `decision`. An `extension_id` that is not the order's
latest request is 422; an unknown order 404."""

UPDATES_DESCRIPTION = """\
An update from the 12345 hotline about one of its work orders, after posting it, with the
hotline's own key (scope `intake:write`, for the `hotline_12345` channel: a key limited to
other channels 403; an unknown order 404). By `kind`:

- `supplement` (补充): the caller added information, in `text`. A step in the case's history
  (its `activity` `hotline_supplement`, the status unchanged, the version + 1); the lead
  department's webhooks hear of it (kind `lifecycle.hotline_supplement`). While the case is
  open.
- `chaser` (催办): the caller chased (`text` optional). Counted on the case (`chasers`), a
  step (`hotline_chaser`), and it presses the lead department as a leader's notice does:
  with no supervision notice open, one at level `urge` (催办) to answer within
  `FQ_HOTLINE_CHASER_ANSWER_HOURS` (24 h); with one open, that notice one level up (督办,
  then 挂牌督办; at the highest it stays), as long to answer at least. The leader is told
  (`case.supervision.v1`, webhook kinds `supervision.notice.*`); the answer's `notice` says
  which. While the case is open.
- `deadline_change`: the order's new `deadline` (办结时限) and/or `urgency` (紧急程度). The
  case's resolution limit becomes the hotline's (`resolve_by_source` `hotline`), later or
  earlier than before: the deadline, or the urgency's days from the order's receipt
  (`sla.hotline_urgency`), the earlier; the urgency's acceptance hours too while the first
  department has not signed for it. The supervision scan and the events use the new limit.
  A step (`hotline_deadline_change`). While the resolution limit runs (`routed`, `accepted`,
  `in_mediation`, `returned`, `awaiting_dispatch`). A `deadline` not after the case's receipt,
  or past, is 422 naming `deadline`.
- `follow_up` (回访结果): the hotline's own return visit: `satisfaction` 1–5 (the scale of the
  centre's `rated` step) and `text`. Recorded as the centre's own follow-up: from `closed`
  the steps `visited` (the text as `visit_notes`) and `rated`, from `visited` `rated`; it
  counts in 满意度 of `GET /v1/stats`. From any other status 409 `illegal_transition`. A case
  already rated keeps its rating: 409 `follow_up_recorded` naming `satisfaction`.

`update_id` is the hotline's own id of the update: the same update sent again answers 200
with the first answer and changes nothing; the same `update_id` with other content is 409
`update_conflict` naming the fields that differ (`reason_zh` in Chinese beside `reason`). A
field another kind takes, a missing one, or bad input is 422 naming it. Phone and id numbers
in `text` are masked before anything is stored. Every update is audited."""

OrderNo = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\x00]*$",
                              description="The hotline's work order number (工单编号)")]


async def _order_case(session: AsyncSession, order_no: str, principal: Principal) -> Case:
    if principal.channels and HOTLINE not in principal.channels:
        raise ApiError(403, "forbidden", "this key is not the 12345 hotline's: it is limited "
                       "to other channels")
    query = select(Case).where(C.channel == HOTLINE.value, C.external_id == order_no)
    visible = store.visible_to(principal)
    if visible is not None:
        query = query.where(visible)
    case = (await session.execute(query)).scalars().first()
    if case is None:
        raise ApiError(404, "not_found", f"no 12345 work order {order_no} (or it has not "
                       "reached mediation yet: try again in a moment)")
    return case


Step = Callable[[AsyncSession, Case], Awaitable[list[dict[str, Any]]]]


async def _run_step(request: Request, principal: Principal, find: Callable[
        [AsyncSession], Awaitable[Case]], step: Step, *, lead_only: bool,
        what: str, detail: dict[str, Any] | None = None) -> TransitionResult:
    """Find the case, check the key may act, take the step, audit it (with `detail`, which
    the step may add to); errors as the API's."""
    runtime: Runtime = request.app.state.runtime
    now = datetime.now(UTC)
    try:
        async with runtime.sessions() as session, session.begin():
            case = await find(session)
            if lead_only and not _may_act(principal, case):
                raise ApiError(403, "forbidden", "this key may read the case but only its "
                               "lead department's keys may act on it")
            steps = await step(session, case)
            session.add(store.audit(principal, AuditAction.TRANSITION, case.case_id,
                                    activity=what, version=case.version,
                                    actor=steps[0]["actor"] if steps else None,
                                    **(detail or {})))
            result = TransitionResult(case=_summary(case, now),
                                      transitions=[_history(s) for s in steps])
    except (StepDataInvalid, StaleVersion, StepNotNow, IllegalTransition) as exc:
        raise refused(exc) from None
    except StepConflict as exc:
        raise ApiError(409, exc.code, str(exc), fields=[
            FieldError(field=name, reason=str(exc), reason_zh=exc.reason_zh)
            for name in exc.fields], extra=exc.extra) from None
    if steps:
        runtime.relay.wake()
    return result


def build_hotline_router() -> APIRouter:
    router = APIRouter()

    @router.post("/v1/cases/{case_id}/progress-notes", response_model=TransitionResult,
                 tags=["cases"], responses=error_responses(401, 403, 404, 409, 422),
                 summary="Add a progress note (过程反馈)", description=NOTES_DESCRIPTION)
    async def progress_note(case_id: str, body: ProgressNoteRequest, request: Request,
                            principal: Principal = require(Scope.CASES_WRITE)
                            ) -> TransitionResult:
        actor = body.actor or principal.name

        async def step(session: AsyncSession, case: Case) -> list[dict[str, Any]]:
            return [await add_progress_note(session, case, body, actor, datetime.now(UTC))]

        return await _run_step(
            request, principal, lambda s: _visible_case(s, case_id, principal), step,
            lead_only=True, what="progress_note")

    @router.post("/v1/cases/{case_id}/extension-requests", response_model=TransitionResult,
                 tags=["cases"], responses=error_responses(401, 403, 404, 409, 422),
                 summary="Ask the 12345 hotline for more time (延期申请)",
                 description=EXTENSION_DESCRIPTION)
    async def extension_request(case_id: str, body: ExtensionRequest, request: Request,
                                principal: Principal = require(Scope.CASES_WRITE)
                                ) -> TransitionResult:
        actor = body.actor or principal.name

        async def step(session: AsyncSession, case: Case) -> list[dict[str, Any]]:
            requested = await request_extension(session, case, body, actor, datetime.now(UTC))
            return [requested.entry]

        return await _run_step(
            request, principal, lambda s: _visible_case(s, case_id, principal), step,
            lead_only=True, what="extension_requested")

    @router.post("/v1/hotline/orders/{order_no}/extension-decision",
                 response_model=TransitionResult, tags=["hotline"],
                 responses=error_responses(401, 403, 404, 409, 422),
                 summary="The hotline answers an extension request (延期审核)",
                 description=DECISION_DESCRIPTION)
    async def extension_decision(order_no: OrderNo, body: ExtensionAnswer, request: Request,
                                 principal: Principal = require(Scope.INTAKE_WRITE)
                                 ) -> TransitionResult:
        async def step(session: AsyncSession, case: Case) -> list[dict[str, Any]]:
            entry = await answer_extension(session, case, body, principal.name,
                                           datetime.now(UTC))
            return [entry] if entry else []

        return await _run_step(
            request, principal, lambda s: _order_case(s, order_no, principal), step,
            lead_only=False, what=f"extension_{body.decision.value}")

    @router.post("/v1/hotline/orders/{order_no}/updates", response_model=HotlineUpdateResult,
                 tags=["hotline"], responses=error_responses(401, 403, 404, 409, 422),
                 summary="An update from the 12345 hotline after the order (补充, 催办, 时限变更, "
                 "回访结果)", description=UPDATES_DESCRIPTION)
    async def hotline_update(order_no: OrderNo, body: HotlineUpdate, request: Request,
                             principal: Principal = require(Scope.INTAKE_WRITE)
                             ) -> HotlineUpdateResult:
        runtime: Runtime = request.app.state.runtime
        secret = runtime.settings.hash_secret
        answered: list[HotlineUpdateResult] = []
        detail: dict[str, Any] = {"update_id": body.update_id, "kind": body.kind.value}

        async def step(session: AsyncSession, case: Case) -> list[dict[str, Any]]:
            answered.clear()
            earlier = await hotline_updates.earlier_answer(session, case, body, secret)
            if earlier is not None:
                detail["repeat"] = True
                answered.append(earlier)
                return []
            now = datetime.now(UTC)
            record = await hotline_updates.reserve(session, case, body, secret, now)
            applied = await hotline_updates.apply_update(
                session, case, body, actor=principal.name[:128], key_id=principal.key_id, at=now,
                settings=runtime.settings)
            result = HotlineUpdateResult(
                case=_summary(case, now), transitions=[_history(e) for e in applied.entries],
                update_id=body.update_id, kind=body.kind, notice=applied.notice)
            record.result = result.model_dump(mode="json")
            if applied.notice is not None:
                detail["notice_id"] = applied.notice.notice_id
            answered.append(result)
            return applied.entries

        async def run() -> HotlineUpdateResult:
            await _run_step(request, principal, lambda s: _order_case(s, order_no, principal),
                            step, lead_only=False, what=f"hotline_{body.kind.value}",
                            detail=detail)
            return answered[0]

        try:
            return await run()
        except IntegrityError:
            # The same update arrived twice at once: the first took it; this one is answered
            # as a repeat (or a conflict) now that it is committed.
            return await run()

    return router
