"""Intake's part of erasing a case's personal data (case.personal_data_erased.v1): the native
payload, where phone and id numbers, names and addresses are in clear, and the Open311 face.
The channel, work-order number and times stay: a work order sent again is still recognised."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.events import CasePersonalDataErasedEvent
from kit.consumer import Delivery
from kit.erasure import erase_json, erase_text, personal_strings
from kit.metrics import PERSONAL_DATA_ERASED
from services.intake.store import IntakeCase, Open311Row

CASES = IntakeCase.__table__  # type: ignore[attr-defined]
OPEN311 = Open311Row.__table__  # type: ignore[attr-defined]


async def on_personal_data_erased(session: AsyncSession, delivery: Delivery) -> None:
    event = delivery.message
    assert isinstance(event, CasePersonalDataErasedEvent)
    case_id = event.data.case_id
    native = (await session.execute(select(CASES.c.native).where(
        CASES.c.case_id == case_id))).scalar_one_or_none()
    known = personal_strings(native or {})
    if native is not None:
        # Marked erased, so that a request for its numbers in clear is told so (410).
        await session.execute(update(CASES).where(CASES.c.case_id == case_id).values(
            native=erase_json(native), personal_data_erased_at=event.data.at))
    description = (await session.execute(select(OPEN311.c.description).where(
        OPEN311.c.service_request_id == case_id))).scalar_one_or_none()
    if description is not None:
        await session.execute(update(OPEN311).where(OPEN311.c.service_request_id == case_id)
                              .values(description=erase_text(description, known),
                                      address=None, address_id=None, lat=None, long=None,
                                      media_url=None))
    PERSONAL_DATA_ERASED.labels(service="intake", reason=event.data.reason).inc()
