"""A case's phone and id numbers in clear (显示号码), for the person working the case: a
route of its own, with its own scope, a required reason, an audit row per request, and
never cached. Intake holds the only clear copy (intake_cases.native), so it answers; but it
knows no case's department or jurisdiction, so for a key limited to those it asks mediation,
with the caller's own key, whether the key may see the case and which department leads it.

The rule (docs/privacy.md): the key needs `personal_data:reveal`; a key limited to channels
reveals its channels' cases; a key limited to jurisdictions the cases mediation shows it; a
key limited to departments only the cases its departments lead (a cooperating department
sees the parties masked, and asks the lead department). Erased cases reveal nothing (410)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import select

from contracts.api_reveal import (
    RevealAnswer,
    RevealedPerson,
    RevealEntry,
    RevealLog,
    RevealOutcome,
    RevealRequest,
)
from kit.auth import Principal, Scope, require
from kit.errors import ApiError, error_responses
from kit.privacy import scrub
from kit.ratelimit import require_within_rate
from kit.runtime import Runtime
from services.intake.domain import people_in
from services.intake.store import IntakeCase, RevealRecord

CASES = IntakeCase.__table__  # type: ignore[attr-defined]
REVEALS = RevealRecord.__table__  # type: ignore[attr-defined]
# Asking mediation is one short GET; a person is waiting at the screen.
MEDIATION_TIMEOUT_SECONDS = 5.0
NEVER_CACHED = {"Cache-Control": "no-store", "Pragma": "no-cache"}

REVEAL_DESCRIPTION = """\
The phone and id numbers of the people in a case, **in clear**, for the person who has to
call them. Scope `personal_data:reveal`; `reason` is required (422 without it) and recorded,
with the key's name, in intake's audit log (`GET /v1/intake/personal-data/reveals`), as is
every refusal. `person` (`reporter`, `parties.0`, ... as mediation's case view names them)
asks for one person; without it, everyone in the case.

A key limited to channels: its channels' cases (404 otherwise). A key limited to departments
or jurisdictions: intake asks mediation with the same key; a case mediation does not show it
is 404, a case its departments do not lead is 403 (a cooperating department sees the parties
masked). Mediation unreachable: 503. A case whose personal data was erased: 410. Answers are
never cached (`Cache-Control: no-store`). The key's rate limit applies (429).
"""


@dataclass(frozen=True)
class Decision:
    outcome: RevealOutcome
    error: ApiError | None = None


async def _mediation_view(request: Request, case_id: str) -> httpx.Response:
    """Mediation's case view for the caller's own key: the caller's limits, applied by the
    service that knows the case's departments and jurisdiction."""
    runtime: Runtime = request.app.state.runtime
    url = f"{runtime.settings.mediation_url.rstrip('/')}/v1/cases/{quote(case_id, safe='')}"
    try:
        async with httpx.AsyncClient(timeout=MEDIATION_TIMEOUT_SECONDS) as client:
            answer = await client.get(url, headers={
                "Authorization": request.headers.get("authorization", "")})
    except httpx.HTTPError:
        answer = None
    if answer is None or answer.status_code >= 500:
        raise ApiError(503, "mediation_unavailable", "Mediation, which knows the case's "
                       "departments, did not answer; try again shortly.",
                       headers={"Retry-After": "5"})
    return answer


async def _decide(request: Request, principal: Principal, case_id: str,
                  channel: str | None, erased: bool) -> Decision:
    not_found = Decision(RevealOutcome.NOT_FOUND, ApiError(404, "not_found", f"no case {case_id}"))
    if channel is None or (principal.channels and channel not in principal.channels):
        return not_found
    if principal.departments or principal.jurisdictions:
        answer = await _mediation_view(request, case_id)
        if answer.status_code == 404:
            return not_found
        if answer.status_code != 200:
            return Decision(RevealOutcome.REFUSED, ApiError(
                403, "forbidden", "Mediation does not let this key read the case "
                "(scope cases:read is needed as well)."))
        lead = answer.json().get("lead_department")
        if principal.departments and lead not in principal.departments:
            return Decision(RevealOutcome.REFUSED, ApiError(
                403, "forbidden", "Only the lead department's keys are shown the numbers in "
                "clear; a cooperating department asks the lead department."))
    if erased:
        return Decision(RevealOutcome.ERASED, ApiError(
            410, "personal_data_erased", f"The personal data of case {case_id} was erased."))
    return Decision(RevealOutcome.REVEALED)


def build_reveal_router() -> APIRouter:
    router = APIRouter(tags=["personal data"])

    @router.post(
        "/v1/intake/cases/{case_id}/personal-data", response_model=RevealAnswer,
        summary="Show a case's phone and id numbers in clear (显示号码), with a reason, audited",
        description=REVEAL_DESCRIPTION,
        responses=error_responses(401, 403, 404, 410, 422, 429, 503),
        operation_id="reveal_personal_data")
    async def reveal(request: Request,
                     case_id: Annotated[str, Path(max_length=64, pattern=r"^[^\x00]*$")],
                     body: RevealRequest,
                     # Rate-limited like intake's other POSTs: nobody reads numbers in bulk.
                     principal: Principal = require_within_rate(Scope.PERSONAL_DATA_REVEAL)
                     ) -> Response:
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session:
            row = (await session.execute(select(
                CASES.c.channel, CASES.c.native, CASES.c.personal_data_erased_at).where(
                CASES.c.case_id == case_id))).first()
        decision = await _decide(request, principal, case_id, row.channel if row else None,
                                 bool(row and row.personal_data_erased_at))
        people = []
        if decision.error is None and row is not None:
            people = [p for p in people_in(row.channel, row.native)
                      if (p.phone or p.id_number) and body.person in (None, p.ref)]
        async with runtime.sessions() as session, session.begin():
            session.add(RevealRecord(
                at=datetime.now(UTC), key_id=principal.key_id[:32],
                key_name=principal.name[:128], case_id=case_id, person=body.person,
                reason=scrub(body.reason), outcome=decision.outcome.value))
        if decision.error is not None:
            decision.error.headers = {**(decision.error.headers or {}), **NEVER_CACHED}
            raise decision.error
        answer = RevealAnswer(case_id=case_id, people=[RevealedPerson(
            person=p.ref, name=p.name, role=p.role, phone=p.phone, id_number=p.id_number)
            for p in people])
        return Response(answer.model_dump_json(), media_type="application/json",
                        headers=NEVER_CACHED)

    @router.get(
        "/v1/intake/personal-data/reveals", response_model=RevealLog,
        summary="Who was shown which case's numbers in clear, why, newest first",
        description="Every request to `POST /v1/intake/cases/{case_id}/personal-data`, "
        "granted or refused, with the key's name and the reason given. Scope `audit:read`; "
        "keys limited to departments, jurisdictions or channels get 403 (intake cannot tell "
        "which cases they may see).",
        responses=error_responses(401, 403, 422), operation_id="personal_data_reveals")
    async def reveals(
        request: Request,
        case_id: Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00]*$")] = None,
        key_id: Annotated[str | None, Query(max_length=32, pattern=r"^[^\x00]*$")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        cursor: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
        principal: Principal = require(Scope.AUDIT_READ),
    ) -> RevealLog:
        if principal.is_limited:
            raise ApiError(403, "forbidden", "The reveal log is for keys without limits: "
                           "intake cannot check departments or jurisdictions.")
        query = select(RevealRecord)
        for column, value in ((REVEALS.c.case_id, case_id), (REVEALS.c.key_id, key_id)):
            if value is not None:
                query = query.where(column == value)
        if cursor is not None:
            query = query.where(REVEALS.c.id < cursor)
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session:
            rows = (await session.execute(
                query.order_by(REVEALS.c.id.desc()).limit(limit + 1))).scalars().all()
        page = rows[:limit]
        return RevealLog(items=[RevealEntry.model_validate(r, from_attributes=True)
                                for r in page],
                         next_cursor=page[-1].id if len(rows) > limit else None)

    return router
