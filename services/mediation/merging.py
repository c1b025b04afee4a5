"""Merging (合并) duplicate reports of one matter into a main case, unmerging them, and
closing them with it.

A merged report goes to status `merged` with `merged_into` set (a lifecycle step of its
own: history, version, event); new steps happen on the main case. When the main case
closes, every report merged into it closes too, by the system, carrying the main case's
outcome in its closing step, so each source hears its own result: notify feeds each 12345
order back on its own callback and texts each reporter, from that report's own events.
A dispatcher may unmerge a report while the main case is open: it goes back to the status
it had before the merge. Each report stays one case (the chaos checker's rule)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.enums import Referral, Status
from contracts.events import TransitionData
from kit.privacy import scrub
from services.mediation.domain.lifecycle import OPEN_STATUSES, Milestones, step_changes
from services.mediation.handlers import SYSTEM_ACTOR, StaleCase, record_transition
from services.mediation.store import HISTORY, C, Case, H

# Two or more reports merged into one matter make it a leader's (领导包案 proposed).
MERGED_FOR_LEADER = 2
_OUTCOMES = (Status.RESOLVED, Status.FAILED, Status.REFERRED)


class MergeRefused(Exception):
    """A merge or unmerge that cannot happen; `field` names what is wrong."""

    def __init__(self, message: str, field: str, status: int = 409,
                 current_status: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.status = status
        self.current_status = current_status


async def _locked(session: AsyncSession, case_ids: list[str]) -> dict[str, Case]:
    rows = (await session.execute(select(Case).where(C.case_id.in_(sorted(case_ids)))
                                  .order_by(C.case_id).with_for_update())).scalars().all()
    return {c.case_id: c for c in rows}


async def merge(session: AsyncSession, main: Case, case_ids: list[str], visible: set[str],
                *, actor: str, reason: str, at: datetime) -> list[Case]:
    """Merge `case_ids` (each visible to the dispatcher: `visible`) into `main`."""
    # Typed by a person: numbers masked before they are stored or published.
    actor, reason = scrub(actor), scrub(reason)
    if Status(main.status) not in OPEN_STATUSES:
        raise MergeRefused(f"the main case is {main.status}: merge into an open case",
                           "case_id", current_status=main.status)
    cases = await _locked(session, [*case_ids, main.case_id])
    main = cases[main.case_id]
    merged = []
    for i, case_id in enumerate(case_ids):
        field = f"case_ids[{i}]"
        other = cases.get(case_id)
        if case_id == main.case_id:
            raise MergeRefused("a case cannot be merged into itself", field, 422)
        if other is None or case_id not in visible:
            raise MergeRefused(f"no case {case_id}", field, 422)
        if Status(other.status) not in OPEN_STATUSES:
            raise MergeRefused(f"case {case_id} is {other.status}: only open cases merge",
                               field, current_status=other.status)
        has_own = (await session.execute(select(C.case_id).where(
            C.merged_into == case_id).limit(1))).first()
        if has_own is not None:
            raise MergeRefused(f"reports are merged into {case_id}: unmerge them or merge "
                               f"{case_id}'s matter the other way round", field)
        try:
            await record_transition(
                session, other, Status.MERGED, actor=actor, at=at,
                reason=f"合并至 {main.case_id}：{reason}",
                changes={"merged_into": main.case_id, "owner_proposed": False})
        except StaleCase:
            raise MergeRefused(f"case {case_id} changed meanwhile", field) from None
        merged.append(other)
    total = len((await session.execute(select(C.case_id).where(
        C.merged_into == main.case_id))).all())
    if total >= MERGED_FOR_LEADER and main.owner_key_id is None and not main.owner_proposed:
        main.owner_proposed = True
        session.add(main)
    await _note(session, main, actor, at, f"合并 {len(merged)} 件重复来件：{reason}",
                {"merged": [c.case_id for c in merged]})
    return merged


async def unmerge(session: AsyncSession, case: Case, *, actor: str, reason: str,
                  at: datetime) -> Case:
    """Take a merged report out of its matter: back to the status it had before."""
    actor, reason = scrub(actor), scrub(reason)
    if case.status != Status.MERGED or case.merged_into is None:
        raise MergeRefused(f"case {case.case_id} is {case.status}, not merged", "case_id",
                           current_status=case.status)
    main_id = case.merged_into
    before = (await session.execute(
        select(H.from_status).where(H.case_id == case.case_id,
                                    H.to_status == Status.MERGED.value)
        .order_by(H.at.desc(), H.id.desc()).limit(1))).scalar()
    back = Status(before) if before else Status.ROUTED
    try:
        await record_transition(session, case, back, actor=actor, at=at,
                                reason=f"从 {main_id} 撤销合并：{reason}",
                                changes={"merged_into": None})
    except StaleCase:
        raise MergeRefused(f"case {case.case_id} changed meanwhile", "case_id") from None
    main = await session.get(Case, main_id)
    if main is not None:
        await _note(session, main, actor, at, f"撤销合并 {case.case_id}：{reason}",
                    {"unmerged": [case.case_id]})
    return case


async def close_merged(session: AsyncSession, main: Case, at: datetime) -> list[dict[str, Any]]:
    """The main case closed: every report merged into it closes too, with its outcome."""
    reports = (await session.execute(
        select(Case).where(C.merged_into == main.case_id, C.status == Status.MERGED.value)
        .order_by(C.case_id).with_for_update())).scalars().all()
    if not reports:
        return []
    outcome, data = await _outcome_of(session, main.case_id)
    steps = []
    for report in reports:
        reached = Milestones(report.mediated_at, report.resolved_at, report.closed_at)
        changes = step_changes(Status.CLOSED, at, TransitionData(), reached)
        steps.append(await record_transition(
            session, report, Status.CLOSED, actor=SYSTEM_ACTOR, at=at,
            reason=f"主案 {main.case_id} 已办结（合并）" + (f"：{outcome}" if outcome else ""),
            data=data, changes=changes))
    return steps


async def _outcome_of(session: AsyncSession, case_id: str) -> tuple[str | None, TransitionData]:
    """The main case's last outcome step (resolved, failed, referred, ...): its data, for
    the merged reports' closing steps (notify words each source's result from it)."""
    row = (await session.execute(
        select(H.to_status, H.data, H.reason).where(
            H.case_id == case_id, H.to_status.in_([s.value for s in _OUTCOMES]))
        .order_by(H.at.desc(), H.id.desc()).limit(1))).first()
    if row is None:
        return None, TransitionData()
    to_status, data, _ = row
    data = data or {}
    referral = data.get("referral")
    return to_status, TransitionData(
        agreement=data.get("agreement"), agreement_amount=data.get("agreement_amount"),
        failure_reason=data.get("failure_reason"),
        referral=Referral(referral) if referral else None)


async def _note(session: AsyncSession, case: Case, actor: str, at: datetime, reason: str,
                data: dict[str, Any]) -> None:
    """A history row on the main case that is not a lifecycle step (version unchanged)."""
    await session.execute(HISTORY.insert().values(
        case_id=case.case_id, version=None, from_status=case.status, to_status=case.status,
        actor=actor[:128], reason=reason, at=at, data=data))

