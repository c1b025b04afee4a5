"""Mediation's case API for staff and other platforms."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlalchemy import and_, or_, select
from sqlalchemy.sql import ColumnElement

from contracts.enums import Category, Channel, Department, Risk, Status, Tier
from kit.auth import Principal, Scope, require
from kit.errors import ApiError, error_responses
from kit.runtime import Runtime
from services.mediation.store import Case, CaseHistory

# Core columns: typed SQL expressions, where SQLModel's attributes read as plain values.
C = Case.__table__.c  # type: ignore[attr-defined]
H = CaseHistory.__table__.c  # type: ignore[attr-defined]


class HistoryEntry(BaseModel):
    from_status: Status | None
    to_status: Status
    actor: str
    reason: str | None
    at: datetime
    data: dict[str, Any]


class CaseSummary(BaseModel):
    case_id: str
    status: Status
    version: int
    channel: Channel
    external_id: str
    received_at: datetime
    category: Category | None
    risk: Risk | None
    tier: Tier | None
    lead_department: Department | None
    cooperating_departments: list[Department]
    jurisdiction_code: str | None
    accept_by: datetime | None
    resolve_by: datetime | None


class CaseView(CaseSummary):
    text: str | None
    decision: dict[str, Any] | None
    history: list[HistoryEntry]


class CasePage(BaseModel):
    items: list[CaseSummary]
    next_cursor: str | None


def _summary(case: Case) -> dict[str, Any]:
    return {name: getattr(case, name) for name in CaseSummary.model_fields}


def _visible(principal: Principal) -> ColumnElement[bool] | None:
    """The cases a department- or jurisdiction-limited key may see."""
    conditions: list[ColumnElement[bool]] = []
    if principal.departments:
        conditions.append(C.lead_department.in_(sorted(principal.departments)))
    if principal.jurisdictions:
        conditions.append(or_(*(C.jurisdiction_code.startswith(code)
                                for code in sorted(principal.jurisdictions))))
    if principal.channels:
        conditions.append(C.channel.in_(sorted(principal.channels)))
    return and_(*conditions) if conditions else None


def _encode_cursor(case: Case) -> str:
    raw = orjson.dumps([case.received_at.isoformat(), case.case_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        received_at, case_id = orjson.loads(raw)
        return datetime.fromisoformat(received_at), str(case_id)
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise ApiError(422, "validation_failed", "cursor is not one this API returned",
                       ) from exc


def build_router() -> APIRouter:
    router = APIRouter(tags=["cases"])

    @router.get("/v1/cases/{case_id}", response_model=CaseView,
                responses=error_responses(401, 403, 404),
                summary="A case with its routing decision and full history")
    async def get_case(case_id: str, request: Request,
                       principal: Principal = require(Scope.CASES_READ)) -> CaseView:
        runtime: Runtime = request.app.state.runtime
        query = select(Case).where(C.case_id == case_id)
        limit = _visible(principal)
        if limit is not None:
            query = query.where(limit)
        async with runtime.sessions() as session:
            case = (await session.execute(query)).scalars().first()
            if case is None:
                raise ApiError(404, "not_found", f"no case {case_id}")
            history = (await session.execute(
                select(CaseHistory).where(H.case_id == case_id)
                .order_by(H.at, H.id))).scalars().all()
        return CaseView(**_summary(case), text=case.text, decision=case.decision,
                        history=[HistoryEntry.model_validate(h, from_attributes=True)
                                 for h in history])

    @router.get("/v1/cases", response_model=CasePage, responses=error_responses(401, 403, 422),
                summary="Cases, newest first, filtered, with cursor pagination")
    async def list_cases(
        request: Request,
        status: Status | None = None,
        channel: Channel | None = None,
        category: Category | None = None,
        risk: Risk | None = None,
        tier: Tier | None = None,
        lead_department: Department | None = None,
        external_id: Annotated[str | None, Query(max_length=128)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=512,
                                            description="next_cursor of the previous page")] = None,
        principal: Principal = require(Scope.CASES_READ),
    ) -> CasePage:
        runtime: Runtime = request.app.state.runtime
        query = select(Case)
        for column, value in ((C.status, status), (C.channel, channel),
                              (C.category, category), (C.risk, risk), (C.tier, tier),
                              (C.lead_department, lead_department),
                              (C.external_id, external_id)):
            if value is not None:
                query = query.where(column == value)
        visible = _visible(principal)
        if visible is not None:
            query = query.where(visible)
        if cursor:
            at, case_id = _decode_cursor(cursor)
            query = query.where(or_(C.received_at < at,
                                    and_(C.received_at == at, C.case_id < case_id)))
        query = query.order_by(C.received_at.desc(), C.case_id.desc())
        async with runtime.sessions() as session:
            cases = (await session.execute(query.limit(limit + 1))).scalars().all()
        page = cases[:limit]
        return CasePage(items=[CaseSummary(**_summary(c)) for c in page],
                        next_cursor=_encode_cursor(page[-1]) if len(cases) > limit else None)

    return router
