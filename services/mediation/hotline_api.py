"""The routes of a 12345 work order's lifecycle between acceptance and result: progress
notes and extension requests by the lead department (on the case), and the hotline's answer
to an extension (on the order, with the hotline's own key). The hotline's later updates
(补充, 催办, a changed deadline) belong beside the answer, under /v1/hotline/orders/."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.api_mediation import (
    AuditAction,
    ExtensionAnswer,
    ExtensionRequest,
    ProgressNoteRequest,
    TransitionResult,
)
from contracts.enums import Channel
from kit.auth import Principal, Scope, require
from kit.errors import ApiError, FieldError, error_responses
from kit.runtime import Runtime
from services.mediation import store
from services.mediation.api import _history, _may_act, _summary, _visible_case, refused
from services.mediation.domain.lifecycle import StaleVersion, StepDataInvalid
from services.mediation.hotline_steps import (
    ExtensionConflict,
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
        what: str) -> TransitionResult:
    """Find the case, check the key may act, take the step, audit it; errors as the API's."""
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
                                    actor=steps[0]["actor"] if steps else None))
            result = TransitionResult(case=_summary(case, now),
                                      transitions=[_history(s) for s in steps])
    except (StepDataInvalid, StaleVersion, StepNotNow) as exc:
        raise refused(exc) from None
    except ExtensionConflict as exc:
        raise ApiError(409, exc.code, str(exc), fields=[
            FieldError(field=name, reason=str(exc)) for name in exc.fields], extra=exc.extra
        ) from None
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

    return router
