"""A person's data on request (scope `personal_data:admin`): which cases name a person, what
is held on them, and its erasure ahead of the retention on a lawful request. A person is
found by the keyed hashes of their phone or id number in the cases' reports (mediation never
holds the numbers in clear); the export shows the person as each case names them and the
case's text without anyone else's names and numbers. Every call is audited."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import String, cast, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.api_mediation import (
    AuditAction,
    ErasureRequest,
    HistoryEntry,
    PersonalDataCase,
    PersonalDataErased,
    PersonalDataExport,
    PersonQuery,
)
from contracts.enums import Status
from kit.auth import Principal, Scope, require
from kit.erasure import erase_json, erase_text, personal_strings
from kit.errors import ApiError, error_responses
from kit.metrics import PERSONAL_DATA_ERASED
from kit.privacy import keyed_hash
from kit.runtime import Runtime
from services.mediation import store
from services.mediation.retention import erase_case
from services.mediation.store import C, Case, CaseHistory, H

PERSON_FIELDS = ("name", "role", "phone_masked", "id_number_masked", "address")


def person_hashes(secret: str, query: PersonQuery) -> set[str]:
    """The keyed hashes intake stored for these numbers (the same normalisation)."""
    hashes = set()
    if query.phone:
        hashes.add(keyed_hash(secret, "phone", query.phone))
    if query.id_number:
        hashes.add(keyed_hash(secret, "id", query.id_number))
    return hashes


def _names_person(ref: Any, hashes: set[str]) -> bool:
    return isinstance(ref, dict) and bool(
        {ref.get("phone_hash"), ref.get("id_number_hash")} & hashes)


async def cases_of(session: AsyncSession, hashes: set[str]) -> list[Case]:
    """Every case whose report names the person (reporter or party), oldest first."""
    candidates = (await session.execute(select(Case).where(
        or_(*(cast(C.report, String).contains(h) for h in sorted(hashes))))
        .order_by(C.received_at, C.case_id))).scalars().all()
    return [case for case in candidates if any(
        _names_person(ref, hashes) for ref in _people(case.report or {}))]


def _people(report: dict[str, Any]) -> list[Any]:
    return [report.get("reporter"), *(report.get("parties") or [])]


def _export(case: Case, history: list[CaseHistory], hashes: set[str]) -> PersonalDataCase:
    people = _people(case.report or {})
    own = [r for r in people if _names_person(r, hashes)]
    others = personal_strings({"others": [r for r in people
                                          if r and not _names_person(r, hashes)]})
    return PersonalDataCase(
        case_id=case.case_id, channel=case.channel, external_id=case.external_id,
        status=Status(case.status), received_at=case.received_at, category=case.category,
        lead_department=case.lead_department,
        roles=[{k: r.get(k) for k in PERSON_FIELDS} for r in own],
        text=erase_text(case.text, others) if case.text else case.text,
        history=[HistoryEntry.model_validate({
            "version": h.version, "from_status": h.from_status, "to_status": h.to_status,
            "actor": h.actor, "at": h.at,
            "reason": erase_text(h.reason, others) if h.reason else h.reason,
            "data": erase_json(h.data or {}, others)}) for h in history],
        personal_data_erased_at=case.personal_data_erased_at)


def _unlimited(principal: Principal) -> None:
    """A person's cases span departments, places and channels: a key limited to some of
    them must not learn of the others, so only an unlimited key may ask."""
    if principal.departments or principal.jurisdictions or principal.channels:
        raise ApiError(403, "forbidden", "a key limited to departments, jurisdictions or "
                       "channels may not search or erase a person's data")


def build_personal_data_router() -> APIRouter:
    router = APIRouter()

    @router.post("/v1/personal-data/export", response_model=PersonalDataExport,
                 tags=["personal data"], responses=error_responses(401, 403, 422),
                 summary="Every case that names a person, and what is held on them",
                 description="Scope `personal_data:admin`. The person is found by the keyed "
                 "hashes of the phone or id number (numbers in clear are only in intake). "
                 "Other people in the same cases are left out. Audited.")
    async def export(body: PersonQuery, request: Request,
                     principal: Principal = require(Scope.PERSONAL_DATA_ADMIN)
                     ) -> PersonalDataExport:
        _unlimited(principal)
        runtime: Runtime = request.app.state.runtime
        hashes = person_hashes(runtime.settings.hash_secret, body)
        async with runtime.sessions() as session, session.begin():
            cases = await cases_of(session, hashes)
            exported = []
            for case in cases:
                history = list((await session.execute(
                    select(CaseHistory).where(H.case_id == case.case_id)
                    .order_by(H.at, H.id))).scalars().all())
                exported.append(_export(case, history, hashes))
            session.add(store.audit(principal, AuditAction.PERSONAL_DATA_EXPORT,
                                    count=len(cases), case_ids=[c.case_id for c in cases]))
        return PersonalDataExport(cases=exported)

    @router.post("/v1/personal-data/erase", response_model=PersonalDataErased,
                 tags=["personal data"], responses=error_responses(401, 403, 422),
                 summary="Erase a person's data ahead of the retention (a lawful request)",
                 description="Scope `personal_data:admin`. Erases the personal data of every "
                 "case that names the person, as the retention job does (the cases' facts "
                 "stay), here and, by case.personal_data_erased.v1, in intake, router and "
                 "notify. Audited with the legal basis given.")
    async def erase(body: ErasureRequest, request: Request,
                    principal: Principal = require(Scope.PERSONAL_DATA_ADMIN)
                    ) -> PersonalDataErased:
        _unlimited(principal)
        runtime: Runtime = request.app.state.runtime
        hashes = person_hashes(runtime.settings.hash_secret, body)
        now = datetime.now(UTC)
        async with runtime.sessions() as session, session.begin():
            cases = await cases_of(session, hashes)
            for case in cases:
                await erase_case(session, case.case_id, "request", now,
                                 key_id=principal.key_id, key_name=principal.name)
            session.add(store.audit(principal, AuditAction.PERSONAL_DATA_ERASE,
                                    count=len(cases), case_ids=[c.case_id for c in cases],
                                    legal_basis=body.legal_basis))
        if cases:
            PERSONAL_DATA_ERASED.labels(service="mediation", reason="request").inc(len(cases))
            runtime.relay.wake()
        return PersonalDataErased(case_ids=[c.case_id for c in cases])

    return router
