"""The router's part of erasing a case's personal data (case.personal_data_erased.v1): the
report it keeps (to route the case again on escalation) loses names, numbers and addresses,
and the case's identity hashes go, so it no longer counts as a prior case of that person.
Its decisions stay: they are the case's facts."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.events import CasePersonalDataErasedEvent
from kit.consumer import Delivery
from kit.erasure import erase_json
from kit.metrics import PERSONAL_DATA_ERASED
from services.router.store import identity_hashes, reports


async def on_personal_data_erased(session: AsyncSession, delivery: Delivery) -> None:
    event = delivery.message
    assert isinstance(event, CasePersonalDataErasedEvent)
    case_id = event.data.case_id
    report = (await session.execute(select(reports.c.report).where(
        reports.c.case_id == case_id))).scalar_one_or_none()
    if report is not None:
        await session.execute(update(reports).where(reports.c.case_id == case_id).values(
            report=erase_json(report)))
    await session.execute(delete(identity_hashes).where(identity_hashes.c.case_id == case_id))
    PERSONAL_DATA_ERASED.labels(service="router", reason=event.data.reason).inc()
