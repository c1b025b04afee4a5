"""Intake's one command: accept a native report exactly once per channel and external id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.events import CaseReportedEvent
from contracts.topics import CASE_REPORTED
from kit.metrics import CASES_RECEIVED
from kit.outbox import add_to_outbox, outbox_row
from services.intake.domain import ChannelAdapter, content_fingerprint, new_case_id, to_case
from services.intake.store import IntakeCase, kit_tables


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class Submission:
    outcome: Outcome
    case_id: str


async def submit(session: AsyncSession, adapter: ChannelAdapter, payload: BaseModel,
                 hash_secret: str) -> Submission:
    """Store the report and its CaseReported in the outbox, or find the earlier one.

    Runs in the caller's transaction. The unique (channel, external_id) constraint decides
    races: of concurrent posts of one order, exactly one inserts.
    """
    external_id = adapter.external_id(payload)
    fingerprint = content_fingerprint(payload)
    now = datetime.now(UTC)
    case_id = new_case_id(now)
    case = to_case(adapter.channel, payload, case_id, hash_secret)
    values = {
        "case_id": case_id, "channel": adapter.channel.value, "external_id": external_id,
        "fingerprint": fingerprint, "received_at": case.received_at, "created_at": now,
        "native": payload.model_dump(mode="json"),
    }
    table = IntakeCase.__table__  # type: ignore[attr-defined]
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    insert = (postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table))
    result = await session.execute(
        insert.values(**values).on_conflict_do_nothing(index_elements=["channel", "external_id"]))
    if result.rowcount == 1:  # type: ignore[attr-defined]
        event = CaseReportedEvent.wrap(case, source="intake", subject=case_id)
        await add_to_outbox(session, kit_tables.outbox, [outbox_row(CASE_REPORTED, event)])
        CASES_RECEIVED.labels(channel=adapter.channel.value).inc()
        return Submission(Outcome.ACCEPTED, case_id)
    existing = (await session.execute(
        select(IntakeCase.case_id, IntakeCase.fingerprint).where(  # type: ignore[call-overload]
            IntakeCase.channel == adapter.channel.value, IntakeCase.external_id == external_id)
    )).one()
    if existing.fingerprint == fingerprint:
        return Submission(Outcome.DUPLICATE, existing.case_id)
    return Submission(Outcome.CONFLICT, existing.case_id)
