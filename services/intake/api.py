"""Intake's REST routes: one POST per channel, taking that channel's native payload."""

# No `from __future__ import annotations`: FastAPI must see each route's payload model
# itself, not a string naming a loop variable.

from typing import Annotated

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from kit.auth import Principal, Scope, require
from kit.errors import ApiError, error_responses
from kit.runtime import Runtime
from services.intake.domain import ADAPTERS, ChannelAdapter
from services.intake.handlers import Outcome, submit


class Accepted(BaseModel):
    case_id: str
    status: str


ERRORS = error_responses(401, 403, 409, 422)


def _channel_route(router: APIRouter, adapter: ChannelAdapter) -> None:
    native = adapter.native
    channel = adapter.channel.value

    @router.post(
        f"/v1/intake/{channel}", status_code=202, response_model=Accepted,
        summary=f"Submit a {channel} report in its native format",
        description=f"Answers 202 with the new case id; the same `{adapter.external_id_field}` "
        "again answers 200 with the first case id; the same id with different content is 409.",
        responses={200: {"model": Accepted, "description": "already received"}, **ERRORS},
        operation_id=f"submit_{channel}",
    )
    async def submit_report(request: Request, payload: Annotated[native, Body()],  # type: ignore[valid-type]
                            principal: Principal = require(Scope.INTAKE_WRITE)) -> JSONResponse:
        if principal.channels and channel not in principal.channels:
            raise ApiError(403, "forbidden", f"This key may not submit to channel '{channel}'.")
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session, session.begin():
            result = await submit(session, adapter, payload, runtime.settings.hash_secret)
        if result.outcome is Outcome.CONFLICT:
            raise ApiError(409, "conflict", f"{adapter.external_id_field} "
                           f"{adapter.external_id(payload)} was already received with different "
                           "content", extra={"case_id": result.case_id})
        runtime.relay.wake()
        if result.outcome is Outcome.DUPLICATE:
            return JSONResponse({"case_id": result.case_id, "status": "duplicate"}, 200)
        return JSONResponse({"case_id": result.case_id, "status": "accepted"}, 202)


def build_router() -> APIRouter:
    router = APIRouter(tags=["intake"])
    for adapter in ADAPTERS.values():
        _channel_route(router, adapter)
    return router
