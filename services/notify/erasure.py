"""Notify's part of erasing a case's personal data (case.personal_data_erased.v1): the masked
phone of its case record, the free text of the outcome (written by staff, it may name the
parties: notify does not know their names, so the text goes; the outcome stays), and the
bodies of the case's deliveries (their staff-written text dropped whole, for the same reason)."""

from __future__ import annotations

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.events import CasePersonalDataErasedEvent
from kit.consumer import Delivery
from kit.erasure import ERASED, STAFF_TEXT_FIELDS, erase_json, erase_text
from kit.metrics import PERSONAL_DATA_ERASED
from services.notify.store import cases, deliveries

FREE_TEXT = ("agreement", "failure_reason", "withdrawal_reason")


def erase_body(body: bytes) -> bytes:
    try:
        return orjson.dumps(erase_json(orjson.loads(body), drop=STAFF_TEXT_FIELDS))
    except orjson.JSONDecodeError:
        return erase_text(body.decode(errors="replace")).encode()


async def on_personal_data_erased(session: AsyncSession, delivery: Delivery) -> None:
    event = delivery.message
    assert isinstance(event, CasePersonalDataErasedEvent)
    case_id = event.data.case_id
    record = (await session.execute(select(*(cases.c[f] for f in FREE_TEXT)).where(
        cases.c.case_id == case_id))).first()
    if record is not None:
        await session.execute(update(cases).where(cases.c.case_id == case_id).values(
            reporter_phone_masked=None,
            **{f: ERASED if value else value for f, value in zip(FREE_TEXT, record,
                                                                  strict=True)}))
    bodies = (await session.execute(select(deliveries.c.id, deliveries.c.body).where(
        deliveries.c.case_id == case_id))).all()
    for row in bodies:
        await session.execute(update(deliveries).where(deliveries.c.id == row.id).values(
            body=erase_body(row.body)))
    PERSONAL_DATA_ERASED.labels(service="notify", reason=event.data.reason).inc()
