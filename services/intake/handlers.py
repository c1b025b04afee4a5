"""Intake's command: accept native reports exactly once per channel and external id, one or
a thousand at a time, in the caller's transaction, with their CaseReported in the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Insert, Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.api_intake import ReportLookup
from contracts.events import CaseReportedEvent
from contracts.topics import CASE_REPORTED
from kit.db import insert_for
from kit.metrics import CASES_RECEIVED
from kit.outbox import add_to_outbox, outbox_row
from services.intake.domain import (
    ChannelAdapter,
    Outcome,
    Stored,
    Submission,
    firsts,
    prepare,
    settle,
)
from services.intake.store import IntakeCase, kit_tables

cases: Table = IntakeCase.__table__  # type: ignore[attr-defined]


def insert_ignoring_duplicates(session: AsyncSession, table: Table,
                               conflict_columns: list[str]) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING for the session's backend."""
    insert: Insert = insert_for(session, table).on_conflict_do_nothing(
        index_elements=conflict_columns)
    return insert


# The cases' insert, built once per backend: building it (the ON CONFLICT clause, RETURNING)
# was 3 % of a single post's CPU. Statements are immutable, so one serves every session.
_CASE_INSERTS: dict[str, Insert] = {}


def _insert_cases(session: AsyncSession) -> Insert:
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    statement = _CASE_INSERTS.get(dialect)
    if statement is None:
        statement = _CASE_INSERTS[dialect] = insert_ignoring_duplicates(
            session, cases, ["channel", "external_id"]).returning(cases.c.case_id)
    return statement


async def submit_many(session: AsyncSession, adapter: ChannelAdapter[Any],
                      payloads: Sequence[BaseModel], hash_secret: str,
                      integration_key_id: str | None = None) -> list[Submission]:
    """Store the new reports and queue their CaseReported (stamped with the posting key's id,
    when posted with one); find the earlier ones.

    One bulk insert: the unique (channel, external_id) constraint decides races, so of
    concurrent posts of one report exactly one inserts, and the others read its case id.
    """
    if not payloads:
        return []
    now = datetime.now(UTC)
    reports = [prepare(adapter, payload, now, hash_secret, integration_key_id)
               for payload in payloads]
    channel = adapter.channel.value
    rows = [{"case_id": r.case_id, "channel": channel, "external_id": r.external_id,
             "fingerprint": r.fingerprint, "received_at": r.case.received_at,
             "created_at": now, "native": r.native} for r in firsts(reports)]
    inserted = set((await session.execute(_insert_cases(session), rows)).scalars())
    stored = {r.external_id: Stored(r.case_id, r.fingerprint)
              for r in reports if r.case_id in inserted}
    earlier = sorted({r.external_id for r in reports} - set(stored))
    if earlier:
        found = await session.execute(
            select(cases.c.external_id, cases.c.case_id, cases.c.fingerprint).where(
                cases.c.channel == channel, cases.c.external_id.in_(earlier)))
        stored |= {row.external_id: Stored(row.case_id, row.fingerprint) for row in found}
    outcomes = settle(reports, inserted, stored)
    accepted = [r for r, o in zip(reports, outcomes, strict=True)
                if o.outcome is Outcome.ACCEPTED]
    await add_to_outbox(session, kit_tables.outbox, [
        outbox_row(CASE_REPORTED, CaseReportedEvent.wrap(r.case, source="intake",
                                                         subject=r.case_id))
        for r in accepted])
    if accepted:
        CASES_RECEIVED.labels(channel=channel).inc(len(accepted))
    return outcomes


async def submit(session: AsyncSession, adapter: ChannelAdapter[Any], payload: BaseModel,
                 hash_secret: str) -> Submission:
    """One report: accepted, a duplicate of an earlier one, or in conflict with it."""
    return (await submit_many(session, adapter, [payload], hash_secret))[0]


async def find_report(session: AsyncSession, channel: str, external_id: str
                      ) -> ReportLookup | None:
    row = (await session.execute(
        select(cases.c.case_id, cases.c.received_at).where(
            cases.c.channel == channel, cases.c.external_id == external_id))).first()
    if row is None:
        return None
    return ReportLookup(channel=channel, external_id=external_id, case_id=row.case_id,
                        received_at=row.received_at)
