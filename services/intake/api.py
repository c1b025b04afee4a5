"""Intake's REST routes: per channel, one POST of its native payload, a batch POST of up to
1,000, and a lookup of the case a report became."""

# No `from __future__ import annotations`: FastAPI must see each route's payload model
# itself, not a string naming a loop variable.

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy import select

from contracts.api_intake import (
    MAX_BATCH_ITEMS,
    Accepted,
    BatchItemResult,
    BatchResult,
    IntakeBatch,
    ItemError,
    ItemStatus,
    ReportLookup,
)
from contracts.api_notify import CaseContact
from contracts.channels import ExternalId
from kit.auth import Principal, Scope, require
from kit.errors import ApiError, FieldError, error_responses, field_errors
from kit.ratelimit import require_within_rate
from kit.runtime import Runtime
from services.intake.committer import GroupCommitter
from services.intake.domain import (
    ADAPTERS,
    ChannelAdapter,
    Outcome,
    Submission,
    contact_phone,
    differing_fields,
)
from services.intake.handlers import cases, find_report, submit_many
from services.intake.reveal import build_reveal_router
from services.intake.store import IntakeCase

ERRORS = error_responses(401, 403, 409, 422, 429)
_EXTERNAL_ID = TypeAdapter(ExternalId)
_STATUS = {Outcome.ACCEPTED: ItemStatus.ACCEPTED, Outcome.DUPLICATE: ItemStatus.DUPLICATE,
           Outcome.CONFLICT: ItemStatus.CONFLICT}


def _admit(principal: Principal, channel: str) -> None:
    if principal.channels and channel not in principal.channels:
        raise ApiError(403, "forbidden", f"This key may not submit to channel '{channel}'.")


def _answer(adapter: ChannelAdapter[Any], payload: BaseModel, result: Submission
            ) -> JSONResponse:
    if result.outcome is Outcome.CONFLICT:
        raise ApiError(409, "conflict", f"{adapter.external_id_field} "
                       f"{adapter.external_id(payload)} was already received with different "
                       "content", extra={"case_id": result.case_id})
    status = 202 if result.outcome is Outcome.ACCEPTED else 200
    return JSONResponse({"case_id": result.case_id, "status": _STATUS[result.outcome].value},
                        status)


def _with_idempotency_key(payload: BaseModel, field: str, key: str | None) -> BaseModel:
    """The payload with the Idempotency-Key header as its optional external id."""
    if key is None:
        return payload
    try:
        key = _EXTERNAL_ID.validate_python(key.strip())
    except ValidationError as exc:
        raise ApiError(422, "validation_failed", "the Idempotency-Key header is not a valid id",
                       fields=[FieldError(field="Idempotency-Key", reason=e.reason)
                               for e in field_errors(list(exc.errors()), strip=())]) from None
    current = getattr(payload, field)
    if current is not None and current != key:
        raise ApiError(422, "validation_failed", f"{field} and Idempotency-Key differ",
                       fields=[FieldError(field=field, reason="differs from the "
                                          "Idempotency-Key header; send one or make them equal")])
    return payload.model_copy(update={field: key})


async def _submit_one(request: Request, adapter: ChannelAdapter[Any], payload: BaseModel,
                      principal: Principal) -> JSONResponse:
    committer: GroupCommitter = request.app.state.committer
    result = await committer.submit(adapter, payload, principal.key_id)
    if result.outcome is Outcome.CONFLICT:
        await _refuse_conflict(request, adapter, payload, result.case_id)
    return _answer(adapter, payload, result)


async def _refuse_conflict(request: Request, adapter: ChannelAdapter[Any], payload: BaseModel,
                           case_id: str) -> None:
    """409 for a report sent again with other content: which fields differ from the first
    (names, not values) and what to do instead."""
    runtime: Runtime = request.app.state.runtime
    external_id = adapter.external_id(payload) or ""
    async with runtime.sessions() as session:
        first = (await session.execute(select(cases.c.native).where(
            cases.c.channel == adapter.channel.value,
            cases.c.external_id == external_id))).scalar()
    changed = differing_fields(first, payload.model_dump(mode="json")) if first else []
    reason = (f"differs from the report received first as case {case_id}; a report, once "
              "received, does not change")
    reason_zh = f"与首次收到的工单（案件 {case_id}）内容不同；已受理的工单内容不会被修改"
    raise ApiError(
        409, "conflict",
        f"{adapter.external_id_field} {external_id} was already received (case {case_id}) "
        "with different content" + (f" in {', '.join(changed[:20])}" if changed else "")
        + ". Resend it unchanged to get its case id, or send the change as a new report with "
        "a new id; a case sent to the wrong department is corrected by the centre (return or "
        "reassignment), not by resending. 该工单号已受理且内容不同：原样重发可取回案件编号；"
        "补充内容请以新工单号提交。See docs/intake.md, \"Duplicates\".",
        fields=[FieldError(field=f, reason=reason, reason_zh=reason_zh) for f in changed[:50]],
        extra={"case_id": case_id})


def _submit_route(router: APIRouter, adapter: ChannelAdapter[Any]) -> None:
    native = adapter.native
    channel = adapter.channel.value
    route = router.post(
        f"/v1/intake/{channel}", status_code=202, response_model=Accepted,
        summary=f"Submit a {channel} report in its native format",
        description=f"Answers 202 with the new case id; the same `{adapter.external_id_field}` "
        "again answers 200 with the first case id; the same id with different content is 409.",
        responses={200: {"model": Accepted, "description": "already received"}, **ERRORS},
        operation_id=f"submit_{channel}")

    if adapter.generates_ids:
        @route
        async def submit_without_source_id(
                request: Request, payload: Annotated[native, Body()],  # type: ignore[valid-type]
                idempotency_key: Annotated[str | None, Header(
                    alias="Idempotency-Key", description=f"Optional, instead of "
                    f"`{adapter.external_id_field}`: retries with the same key are not doubled",
                )] = None,
                principal: Principal = require_within_rate(Scope.INTAKE_WRITE)
                ) -> JSONResponse:
            _admit(principal, channel)
            keyed = _with_idempotency_key(payload, adapter.external_id_field, idempotency_key)
            return await _submit_one(request, adapter, keyed, principal)
        return

    @route
    async def submit_report(request: Request,
                            payload: Annotated[native, Body()],  # type: ignore[valid-type]
                            principal: Principal = require_within_rate(Scope.INTAKE_WRITE)
                            ) -> JSONResponse:
        _admit(principal, channel)
        return await _submit_one(request, adapter, payload, principal)


def _validate_item(adapter: ChannelAdapter[Any], raw: Any) -> BaseModel | list[ItemError]:
    try:
        return adapter.native.model_validate(raw)
    except ValidationError as exc:
        return [ItemError(field="<item>" if e.field == "<body>" else e.field, reason=e.reason)
                for e in field_errors(list(exc.errors()), strip=())]


def _raw_external_id(adapter: ChannelAdapter[Any], raw: Any) -> str | None:
    value = raw.get(adapter.external_id_field) if isinstance(raw, dict) else None
    return value[:128] if isinstance(value, str) else None


def _batch_route(router: APIRouter, adapter: ChannelAdapter[Any]) -> None:
    channel = adapter.channel.value

    @router.post(
        f"/v1/intake/{channel}/batch", response_model=BatchResult,
        summary=f"Submit up to {MAX_BATCH_ITEMS} {channel} reports at once",
        description=f"`items` holds up to {MAX_BATCH_ITEMS} native `{adapter.native.__name__}` "
        "payloads. Each is validated on its own and answered in `results` at its index: "
        "accepted (a new case), duplicate (the first case's id), conflict (the external id "
        "was received with different content) or invalid (with the fields at fault). Valid "
        "items are stored in one transaction. More items is 422.",
        responses=error_responses(401, 403, 422, 429), operation_id=f"submit_{channel}_batch")
    async def submit_batch(request: Request, batch: IntakeBatch,
                           principal: Principal = require_within_rate(Scope.INTAKE_WRITE)
                           ) -> BatchResult:
        _admit(principal, channel)
        runtime: Runtime = request.app.state.runtime
        checked = [_validate_item(adapter, raw) for raw in batch.items]
        valid = [(i, item) for i, item in enumerate(checked) if isinstance(item, BaseModel)]
        async with runtime.sessions() as session, session.begin():
            outcomes = await submit_many(session, adapter, [p for _, p in valid],
                                         runtime.settings.hash_secret, principal.key_id)
        results = [BatchItemResult(index=i, status=ItemStatus.INVALID, fields=item,
                                   external_id=_raw_external_id(adapter, batch.items[i]))
                   for i, item in enumerate(checked) if isinstance(item, list)]
        results += [BatchItemResult(index=i, status=_STATUS[o.outcome], case_id=o.case_id,
                                    external_id=adapter.external_id(p))
                    for (i, p), o in zip(valid, outcomes, strict=True)]
        results.sort(key=lambda r: r.index)
        counts = {s: sum(1 for r in results if r.status is s) for s in ItemStatus}
        if counts[ItemStatus.ACCEPTED]:
            runtime.relay.wake()
        return BatchResult(accepted=counts[ItemStatus.ACCEPTED],
                           duplicates=counts[ItemStatus.DUPLICATE],
                           conflicts=counts[ItemStatus.CONFLICT],
                           invalid=counts[ItemStatus.INVALID], results=results)


def _lookup_route(router: APIRouter, adapter: ChannelAdapter[Any]) -> None:
    channel = adapter.channel.value

    @router.get(
        f"/v1/intake/{channel}/reports/{{external_id:path}}", response_model=ReportLookup,
        summary=f"The case a {channel} report became",
        description=f"By the report's `{adapter.external_id_field}`; for systems that "
        "submit over Kafka and need the case id.",
        responses=error_responses(401, 403, 404), operation_id=f"find_{channel}_report")
    async def find(request: Request, external_id: str,
                   principal: Principal = require(Scope.INTAKE_WRITE)) -> ReportLookup:
        _admit(principal, channel)
        found = None
        try:
            _EXTERNAL_ID.validate_python(external_id)
        except ValidationError:
            pass  # not an id any report can have
        else:
            runtime: Runtime = request.app.state.runtime
            async with runtime.sessions() as session:
                found = await find_report(session, channel, external_id)
        if found is None:
            raise ApiError(404, "not_found", f"no {channel} report with "
                           f"{adapter.external_id_field} {external_id}")
        return found


def _contact_route(router: APIRouter) -> None:
    @router.get(
        "/v1/intake/cases/{case_id}/contact", response_model=CaseContact,
        summary="The reporting citizen's phone, for notify's SMS (personal data)",
        description="Scope `personal_data:read`. The number is never published in an event; "
        "this is the one place it can be read. 404 when the case is unknown or has no phone "
        "(or is from a channel a channel-limited key may not see). Intake knows no case's "
        "department or jurisdiction, so keys limited to those get 403.",
        responses=error_responses(401, 403, 404), operation_id="case_contact")
    async def contact(request: Request, case_id: Annotated[str, Path(max_length=64)],
                      principal: Principal = require(Scope.PERSONAL_DATA_READ)) -> Response:
        if principal.departments or principal.jurisdictions:
            raise ApiError(403, "forbidden", "Personal data is not given to keys limited to "
                           "departments or jurisdictions: intake cannot check those limits.")
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session:
            row = (await session.execute(
                select(IntakeCase.channel, IntakeCase.native).where(  # type: ignore[call-overload]
                    IntakeCase.case_id == case_id))).first()
        if row is not None and principal.channels and row.channel not in principal.channels:
            row = None  # outside the key's channels: as if there were no such case
        phone = contact_phone(row.channel, row.native) if row else None
        if phone is None:
            raise ApiError(404, "not_found", f"no case {case_id} with a contact phone")
        return Response(CaseContact(case_id=case_id, phone=phone).model_dump_json(),
                        media_type="application/json", headers={"Cache-Control": "no-store"})


def build_router() -> APIRouter:
    router = APIRouter(tags=["intake"])
    _contact_route(router)
    router.include_router(build_reveal_router())
    for adapter in ADAPTERS.values():
        _submit_route(router, adapter)
        _batch_route(router, adapter)
        _lookup_route(router, adapter)
    return router
