"""Supervision by hand (督办 / 催办): a leader issues a notice on a case (提示, 催办, 督办,
挂牌督办) with what is asked and an answer deadline; the lead department answers (反馈);
an answer missed raises the notice one level, gives it as long again, and tells the leader.

Every change is one transaction: the notice row, a history row of the case (its status
and version unchanged: a notice is not a step of the lifecycle), a case.supervision.v1
event through the outbox (with `notice` set) and, for people's actions, the audit entry."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.api_matters import NoticeView
from contracts.enums import (
    Department,
    NoticeAction,
    NoticeLevel,
    SlaKind,
    Status,
    SupervisionLevel,
    Tier,
)
from contracts.events import CaseSupervision, CaseSupervisionEvent, SupervisionNoticeRef
from contracts.topics import CASE_SUPERVISION
from kit.metrics import SUPERVISION_NOTICE_ANSWERS, SUPERVISION_NOTICES_RAISED
from kit.outbox import add_to_outbox, outbox_row
from kit.privacy import scrub
from services.mediation.domain.time_limits import supervision_tier
from services.mediation.matter_tables import NOTICES, N, SupervisionNotice
from services.mediation.store import HISTORY, Case, kit_tables

SYSTEM_ACTOR = "urn:fengqiao:mediation"
LEVELS = list(NoticeLevel)  # lowest first
LEVELS_ZH = {NoticeLevel.REMINDER: "提示", NoticeLevel.URGE: "催办",
             NoticeLevel.SUPERVISE: "督办", NoticeLevel.LISTED: "挂牌督办"}
# For consumers that know only the time limits' levels.
AS_SUPERVISION_LEVEL = {NoticeLevel.REMINDER: SupervisionLevel.WARNING,
                        NoticeLevel.URGE: SupervisionLevel.LEVEL_1,
                        NoticeLevel.SUPERVISE: SupervisionLevel.LEVEL_2,
                        NoticeLevel.LISTED: SupervisionLevel.LEVEL_2}
OPEN, ANSWERED = "open", "answered"


class NoticeRefused(Exception):
    """A notice that cannot be issued or answered as asked (answered already, ...)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def next_level(level: NoticeLevel) -> NoticeLevel | None:
    """One level up; None at the highest (挂牌督办)."""
    i = LEVELS.index(level)
    return LEVELS[i + 1] if i + 1 < len(LEVELS) else None


def view(notice: SupervisionNotice) -> NoticeView:
    return NoticeView.model_validate(notice, from_attributes=True)


async def issue(session: AsyncSession, case: Case, *, level: NoticeLevel, asked: str,
                answer_by: datetime, actor: str, key_id: str, now: datetime
                ) -> SupervisionNotice:
    if answer_by <= now:
        raise NoticeRefused("answer_by must be in the future", "answer_by")
    if Status(case.status) in _FINISHED:
        raise NoticeRefused(f"the case is {case.status}: nothing is left to press for",
                            "case_id")
    notice = SupervisionNotice(
        notice_id=str(uuid.uuid4()), case_id=case.case_id, level=level.value, status=OPEN,
        asked=scrub(asked), department=case.lead_department, issued_by=scrub(actor)[:128],
        issued_key_id=key_id[:32], issued_at=now, answer_by=answer_by,
        answer_seconds=(answer_by - now).total_seconds(), raises=0)
    session.add(notice)
    await _record(session, case, notice, NoticeAction.ISSUED, actor, now,
                  f"{LEVELS_ZH[level]}：{notice.asked}")
    return notice


async def answer(session: AsyncSession, case: Case, notice_id: str, *, text: str,
                 actor: str, now: datetime) -> SupervisionNotice:
    notice = (await session.execute(
        select(SupervisionNotice).where(N.notice_id == notice_id, N.case_id == case.case_id)
        .with_for_update())).scalars().first()
    if notice is None:
        raise LookupError(notice_id)
    if notice.status != OPEN:
        raise NoticeRefused(f"notice {notice_id} was answered already", "notice_id")
    on_time = now <= notice.answer_by
    # Conditional on the notice still being open: two answers at once, one wins.
    done = await session.execute(
        update(NOTICES).where(N.notice_id == notice_id, N.status == OPEN)
        .values(status=ANSWERED, answer=scrub(text), answered_by=scrub(actor)[:128],
                answered_at=now, answered_on_time=on_time)
        .execution_options(synchronize_session=False))
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise NoticeRefused(f"notice {notice_id} was answered already", "notice_id")
    await session.refresh(notice)
    await _record(session, case, notice, NoticeAction.ANSWERED, actor, now,
                  f"反馈（{LEVELS_ZH[NoticeLevel(notice.level)]}）：{notice.answer}")
    SUPERVISION_NOTICE_ANSWERS.labels(on_time="true" if on_time else "false").inc()
    return notice


async def raise_missed(session: AsyncSession, now: datetime, limit: int) -> int:
    """Every open notice past its answer deadline goes one level up (at the highest it
    stays, and is missed again), with as long again to answer; the leader is told by the
    event. Returns how many were raised. Conditional on the deadline read, so two leaders
    (failover) cannot raise one notice twice for one miss."""
    due = (await session.execute(
        select(SupervisionNotice).where(N.status == OPEN, N.answer_by <= now)
        .order_by(N.answer_by).limit(limit))).scalars().all()
    raised = 0
    # Their cases are written in case id order, the order every writer of several cases
    # locks them in (store.due_for_supervision), so this pass and a merge cannot deadlock.
    for notice in sorted(due, key=lambda n: (n.case_id, n.notice_id)):
        level = NoticeLevel(notice.level)
        higher = next_level(level)
        new_deadline = now + timedelta(seconds=max(notice.answer_seconds, 1.0))
        if not await _raise(session, notice, higher or level, new_deadline):
            continue
        case = await session.get(Case, notice.case_id)
        if case is None:
            continue
        action = NoticeAction.RAISED if higher else NoticeAction.MISSED
        why = (f"逾期未反馈，升级为{LEVELS_ZH[higher]}" if higher
               else f"逾期未反馈（{LEVELS_ZH[level]}，已是最高级）")
        await _record(session, case, notice, action, SYSTEM_ACTOR, now, why)
        raised += 1
    return raised


async def _raise(session: AsyncSession, notice: SupervisionNotice, level: NoticeLevel,
                 answer_by: datetime) -> bool:
    """Raise `notice` to `level` with a new answer deadline, conditional on it being open at
    the deadline read (two raises at once: one wins). True if it was raised."""
    done = await session.execute(
        update(NOTICES).where(N.notice_id == notice.notice_id, N.status == OPEN,
                              N.answer_by == notice.answer_by)
        .values(level=level.value, answer_by=answer_by, raises=N.raises + 1)
        .execution_options(synchronize_session=False))
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return False
    await session.refresh(notice)
    SUPERVISION_NOTICES_RAISED.labels(level=notice.level).inc()
    return True


async def press(session: AsyncSession, case: Case, *, asked: str, answer_within: timedelta,
                actor: str, key_id: str, now: datetime, occasion: str
                ) -> tuple[SupervisionNotice, NoticeAction]:
    """A chaser (催办) from the citizen, as a centre handles one: with no open notice on the
    case, a notice at level urge (催办) for the lead department, to answer within
    `answer_within`; with one open, that notice one level up (at the highest it stays:
    `missed`), its answer deadline kept, or `answer_within` from now if later. The leader
    is told as for any notice (case.supervision.v1); `occasion` (the chaser's own id) tells
    apart the events of chasers that find the notice at the highest level. Raises
    NoticeRefused on a finished case."""
    open_notice = (await session.execute(
        select(SupervisionNotice).where(N.case_id == case.case_id, N.status == OPEN)
        .order_by(N.issued_at.desc()).limit(1).with_for_update())).scalars().first()
    if open_notice is None:
        notice = await issue(session, case, level=NoticeLevel.URGE, asked=asked,
                             answer_by=now + answer_within, actor=actor, key_id=key_id,
                             now=now)
        return notice, NoticeAction.ISSUED
    level = NoticeLevel(open_notice.level)
    higher = next_level(level)
    if higher is None:
        await _record(session, case, open_notice, NoticeAction.MISSED, actor, now,
                      f"再次催办（{LEVELS_ZH[level]}，已是最高级）：{scrub(asked)}",
                      occasion=occasion)
        return open_notice, NoticeAction.MISSED
    answer_by = max(open_notice.answer_by, now + answer_within)
    if not await _raise(session, open_notice, higher, answer_by):
        raise NoticeRefused(f"notice {open_notice.notice_id} changed meanwhile: send the "
                            "chaser again", "notice_id")
    await _record(session, case, open_notice, NoticeAction.RAISED, actor, now,
                  f"群众催办，升级为{LEVELS_ZH[higher]}：{scrub(asked)}")
    return open_notice, NoticeAction.RAISED


async def open_notice_counts(session: AsyncSession) -> list[tuple[str, str | None, int]]:
    """Open notices by (level, department), for the gauge."""
    rows = (await session.execute(
        select(N.level, N.department, func.count()).where(N.status == OPEN)
        .group_by(N.level, N.department))).all()
    return [(level, department, int(n)) for level, department, n in rows]


_FINISHED = frozenset({Status.CLOSED, Status.VISITED, Status.RATED, Status.ARCHIVED})


async def _record(session: AsyncSession, case: Case, notice: SupervisionNotice,
                  action: NoticeAction, actor: str, now: datetime, reason: str,
                  occasion: str = "") -> None:
    """The history row and the supervision event of a change to a notice."""
    ref = SupervisionNoticeRef(
        notice_id=notice.notice_id, action=action, level=NoticeLevel(notice.level),
        asked=notice.asked, answer_by=notice.answer_by, issued_by=notice.issued_by,
        answer=notice.answer, answered_by=notice.answered_by,
        answered_on_time=notice.answered_on_time)
    status = case.status or Status.REPORTED.value
    await session.execute(HISTORY.insert().values(
        case_id=case.case_id, version=None, from_status=status, to_status=status,
        actor=scrub(actor)[:128], reason=scrub(reason), at=now,
        data={"supervision_notice": ref.model_dump(mode="json", exclude_none=True)}))
    level = AS_SUPERVISION_LEVEL[ref.level]
    event = CaseSupervisionEvent.wrap(CaseSupervision(
        case_id=case.case_id, level=level, sla_kind=SlaKind.RESOLUTION,
        deadline=notice.answer_by, tier=supervision_tier(level, Tier(case.tier or Tier.TOWN)),
        lead_department=Department(notice.department) if notice.department else None,
        at=now, notice=ref, owner=case.owner),
        source="mediation", subject=case.case_id,
        event_id=_event_id(notice, action, occasion))
    await add_to_outbox(session, kit_tables.outbox, [outbox_row(CASE_SUPERVISION, event)])


def _event_id(notice: SupervisionNotice, action: NoticeAction, occasion: str = "") -> str:
    """One id per notice, action and deadline (and occasion, when the same change can come
    twice: two chasers at the highest level): a repeat of the same change has the same."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:fengqiao:notice:{notice.notice_id}:"
                          f"{action.value}:{notice.level}:{notice.answer_by.isoformat()}"
                          + (f":{occasion}" if occasion else "")))

