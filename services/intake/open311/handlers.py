"""Open311 requests: filing one (a case through intake's one submit, plus its public
record), reading them back, and following their cases' lifecycle to open/closed."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.api_intake import Open311Created, Open311ServiceRequest, Open311Token
from contracts.channels import Open311Request
from contracts.enums import Channel
from contracts.events import CaseLifecycleEvent
from kit.consumer import Delivery, data_field_in
from kit.privacy import scrub
from services.intake.handlers import submit
from services.intake.open311.domain import (
    MAX_RESULTS,
    OPEN,
    OPEN311_ADAPTER,
    SERVICE_NOTICE,
    SERVICES,
    STATUS_NOTES,
    RequestQuery,
    open311_status,
)
from services.intake.store import Open311Row

requests_table: Table = Open311Row.__table__  # type: ignore[attr-defined]


async def file_request(session: AsyncSession, request: Open311Request, hash_secret: str
                       ) -> Open311Created:
    """A new case from an Open311 request, and the request's public record, in the caller's
    transaction. (Open311 requests carry no id of their own, so each POST is a new case.)"""
    submission = await submit(session, OPEN311_ADAPTER, request, hash_secret)
    token = secrets.token_urlsafe(12)
    now = datetime.now(UTC)
    await session.execute(requests_table.insert().values(
        service_request_id=submission.case_id, token=token,
        service_code=request.service_code, description=scrub(request.description),
        lat=request.lat, long=request.long,
        address=scrub(request.address_string) if request.address_string else None,
        address_id=request.address_id,
        media_url=str(request.media_url) if request.media_url else None,
        status=OPEN, status_notes=None, agency_responsible=None, case_version=0,
        requested_datetime=now, updated_datetime=now))
    return Open311Created(service_request_id=submission.case_id, token=token,
                          service_notice=SERVICE_NOTICE, account_id=request.account_id)


def _w3c(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat(timespec="seconds") if at else None


def public_view(row: Open311Row) -> Open311ServiceRequest:
    service = SERVICES.get(row.service_code)
    return Open311ServiceRequest(
        service_request_id=row.service_request_id, status=row.status,
        status_notes=row.status_notes,
        service_name=service.name if service else row.service_code,
        service_code=row.service_code, description=row.description,
        agency_responsible=row.agency_responsible, service_notice=SERVICE_NOTICE,
        requested_datetime=_w3c(row.requested_datetime) or "",
        updated_datetime=_w3c(row.updated_datetime) or "",
        expected_datetime=None, address=row.address, address_id=row.address_id, zipcode=None,
        lat=row.lat, long=row.long, media_url=row.media_url)


async def find_requests(session: AsyncSession, query: RequestQuery
                        ) -> list[Open311ServiceRequest]:
    """Matching requests, newest first, at most 1,000."""
    statement = select(Open311Row)
    if query.ids:
        statement = statement.where(requests_table.c.service_request_id.in_(query.ids))
    else:
        if query.service_codes:
            statement = statement.where(requests_table.c.service_code.in_(query.service_codes))
        if query.statuses:
            statement = statement.where(requests_table.c.status.in_(query.statuses))
        if query.start is not None:
            statement = statement.where(requests_table.c.requested_datetime >= query.start)
        if query.end is not None:
            statement = statement.where(requests_table.c.requested_datetime <= query.end)
    statement = statement.order_by(requests_table.c.requested_datetime.desc(),
                                   requests_table.c.service_request_id).limit(MAX_RESULTS)
    rows = (await session.execute(statement)).scalars().all()
    return [public_view(row) for row in rows]


async def find_token(session: AsyncSession, token: str) -> Open311Token | None:
    found = (await session.execute(select(requests_table.c.service_request_id).where(
        requests_table.c.token == token))).scalar_one_or_none()
    return Open311Token(service_request_id=found, token=token) if found else None


# The same test on the event's JSON, before it is validated: intake's follower decodes only
# Open311 cases' steps, not every lifecycle event of every case.
MAY_BE_OPEN311_STEP = data_field_in(CaseLifecycleEvent.event_type, ("channel",),
                                    {Channel.OPEN311.value},
                                    {c.value for c in Channel})


def is_open311_step(event: BaseModel) -> bool:
    """A lifecycle step of a case reported through Open311 (the only ones it follows)."""
    return isinstance(event, CaseLifecycleEvent) and event.data.channel is Channel.OPEN311


async def follow_lifecycle(session: AsyncSession, delivery: Delivery) -> None:
    """case.lifecycle.v1 → the request's status (open until closed, visited, rated or
    archived), its note and the lead department as agency_responsible."""
    event = delivery.message
    if not is_open311_step(event):
        return
    assert isinstance(event, CaseLifecycleEvent)
    step = event.data
    values: dict[str, object] = {
        "status": open311_status(step.to_status), "status_notes": STATUS_NOTES[step.to_status],
        "case_version": step.version, "updated_datetime": step.at}
    if step.lead_department is not None:
        values["agency_responsible"] = step.lead_department.value
    await session.execute(update(requests_table).where(
        requests_table.c.service_request_id == step.case_id,
        requests_table.c.case_version < step.version).values(**values))
