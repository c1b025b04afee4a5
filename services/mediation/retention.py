"""Personal data kept no longer than needed: one leader among the mediation processes erases
the personal data of cases archived longer than FQ_PERSONAL_DATA_RETENTION_DAYS, here and,
through case.personal_data_erased.v1, in every service that keeps some (intake, router,
notify). The case's facts stay (category, dates, departments, outcome), so the figures do
not change. Each case is erased, audited and announced in one transaction, a batch at a
time: an interrupted run leaves every case either done or still due, and the next leader
carries on."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from contracts.api_mediation import AuditAction
from contracts.enums import Status
from contracts.events import CasePersonalDataErased, CasePersonalDataErasedEvent
from contracts.topics import CASE_PERSONAL_DATA_ERASED
from kit.erasure import erase_json, erase_text, personal_strings
from kit.leader import run_as_leader, sleep_unless
from kit.metrics import PERSONAL_DATA_ERASED
from kit.outbox import add_to_outbox, outbox_row
from kit.runtime import Runtime
from services.mediation.domain.places import REPORTED, erased_position
from services.mediation.related import delete_keys
from services.mediation.store import (
    HISTORY,
    AuditRecord,
    C,
    Case,
    H,
    HotlineUpdateRecord,
    kit_tables,
)

log = logging.getLogger(__name__)

LOCK = "fengqiao-mediation-personal-data-retention"
Reason = Literal["retention", "request"]


async def erase_case(session: AsyncSession, case_id: str, reason: Reason, now: datetime,
                     key_id: str = "system", key_name: str = "personal-data-retention"
                     ) -> bool:
    """Erase one case's personal data in mediation's tables, audit it and tell the other
    services, in the caller's transaction. False when there is no such case."""
    case = await session.get(Case, case_id)
    if case is None:
        return False
    known = personal_strings(case.report or {})
    case.text = erase_text(case.text, known) if case.text else case.text
    case.report = erase_json(case.report, known) if case.report else case.report
    case.personal_data_erased_at = case.personal_data_erased_at or now
    if case.position == REPORTED:
        # The report's coordinates may be where someone lives: the place's centre instead.
        case.sqlmodel_update(erased_position(case.decision))
    # Nothing may tie the case to its person or home any more (related cases).
    await delete_keys(session, case_id)
    steps = (await session.execute(select(H.id, H.reason, H.data).where(
        H.case_id == case_id))).all()
    for step in steps:
        await session.execute(update(HISTORY).where(H.id == step.id).values(
            reason=erase_text(step.reason, known) if step.reason else step.reason,
            data=erase_json(step.data or {}, known)))
    # The hotline's updates keep the answer they were given (steps, texts): erased alike.
    answers = (await session.execute(select(HotlineUpdateRecord).where(
        col(HotlineUpdateRecord.case_id) == case_id))).scalars().all()
    for answer in answers:
        answer.result = erase_json(answer.result or {}, known)
    session.add(AuditRecord(at=now, key_id=key_id[:32], key_name=key_name[:128],
                            action=AuditAction.ERASE.value, case_id=case_id,
                            detail={"reason": reason}))
    event = CasePersonalDataErasedEvent.wrap(
        CasePersonalDataErased(case_id=case_id, reason=reason, at=now),
        source="mediation", subject=case_id)
    await add_to_outbox(session, kit_tables.outbox, [outbox_row(CASE_PERSONAL_DATA_ERASED,
                                                                event)])
    return True


class PersonalDataRetention:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.retention = timedelta(days=runtime.settings.personal_data_retention_days)
        self.interval = runtime.settings.personal_data_check_seconds
        self.batch = runtime.settings.personal_data_batch
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        await run_as_leader(self.runtime.engine, LOCK, self._lead, self._stopping)

    def stop(self) -> None:
        self._stopping.set()

    async def _lead(self) -> None:
        while not self._stopping.is_set():
            while await self.erase_due(datetime.now(UTC)) >= self.batch:
                if self._stopping.is_set():
                    return
            await sleep_unless(self._stopping, self.interval)

    async def erase_due(self, now: datetime) -> int:
        """Erase one batch of the cases archived before `now` minus the retention whose
        personal data is still there; returns how many."""
        cutoff = now - self.retention
        async with self.runtime.sessions() as session, session.begin():
            due = (await session.execute(
                select(C.case_id).join(HISTORY, H.case_id == C.case_id)
                .where(C.status == Status.ARCHIVED.value, C.personal_data_erased_at.is_(None),
                       H.to_status == Status.ARCHIVED.value, H.at < cutoff)
                .distinct().limit(self.batch))).scalars().all()
            for case_id in due:
                await erase_case(session, case_id, "retention", now)
        if due:
            PERSONAL_DATA_ERASED.labels(service="mediation", reason="retention").inc(len(due))
            log.info("personal data erased after retention", extra={"cases": len(due)})
            self.runtime.relay.wake()
        return len(due)
