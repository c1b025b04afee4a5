"""The 12345 hotline's updates about an order after posting it: the caller added information
(补充), chased (催办), a new deadline or urgency (时限变更), the hotline's own return visit
(回访结果). Each is a step of the case, recorded as the other steps are (history, a
case.lifecycle.v1 event through the outbox, in the request's transaction), and each is kept
by the hotline's `update_id`, so the same update sent again answers as the first time."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import yaml
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.api_mediation import (
    HotlineNoticeRef,
    HotlineUpdate,
    HotlineUpdateResult,
    StepInput,
    TransitionRequest,
)
from contracts.enums import (
    CaseActivity,
    HotlineUpdateKind,
    LimitSource,
    NoticeLevel,
    SlaKind,
    Status,
    Urgency,
)
from contracts.events import TransitionData
from kit.privacy import scrub
from kit.settings import Settings
from services.mediation import supervision_notices
from services.mediation.domain.lifecycle import OPEN_STATUSES, DataProblem, StepDataInvalid
from services.mediation.domain.time_limits import RUNS_IN
from services.mediation.handlers import transition_case
from services.mediation.hotline_steps import StepConflict, StepNotNow, record_activity
from services.mediation.store import Case, HotlineUpdateRecord

S = Status
K = HotlineUpdateKind
# Added information and chasers while the case is being worked (after closure the caller
# opens a new order); a new deadline while the resolution limit runs; the hotline's return
# visit where the centre's own would be (after closure, before the rating).
SUPPLEMENT_STATUSES = OPEN_STATUSES
CHASER_STATUSES = OPEN_STATUSES
DEADLINE_STATUSES = RUNS_IN[SlaKind.RESOLUTION]
FOLLOW_UP_STATUSES = frozenset({S.CLOSED, S.VISITED})

# The router's rules file: the urgencies' limits (`sla.hotline_urgency`) are read from the
# same file the router routes with, so the two never disagree.
ROUTER_RULES = Path(__file__).resolve().parents[1] / "router" / "rules" / "default.yaml"


@dataclass(frozen=True)
class UrgencyLimits:
    """What an urgency asks for, from the order's receipt (None: nothing)."""

    accept_hours: float | None = None
    resolve_days: float | None = None


@cache
def urgency_limits(path: Path | None) -> dict[Urgency, UrgencyLimits]:
    """`sla.hotline_urgency` of the routing rules (FQ_ROUTING_RULES_PATH, else the shipped
    default): each urgency's acceptance hours and resolution days."""
    rules = yaml.safe_load((path or ROUTER_RULES).read_text(encoding="utf-8")) or {}
    table = (rules.get("sla") or {}).get("hotline_urgency") or {}
    return {Urgency(name): UrgencyLimits(limits.get("accept_hours"), limits.get("resolve_days"))
            for name, limits in table.items()}


# --- the same update again --------------------------------------------------------------------

def fingerprint(body: HotlineUpdate, secret: str) -> dict[str, str]:
    """A keyed hash per field of the update (its id aside): equal content, equal hashes;
    the text itself, which may hold a phone number, is not kept."""
    values = body.model_dump(mode="json", exclude={"update_id"})
    return {name: hmac.new(secret.encode(), f"{name}:".encode() + orjson.dumps(value),
                           hashlib.sha256).hexdigest()
            for name, value in sorted(values.items())}


async def earlier_answer(session: AsyncSession, case: Case, body: HotlineUpdate,
                         secret: str) -> HotlineUpdateResult | None:
    """The answer given to this update the first time, or None if it is new. Raises
    StepConflict (`update_conflict`) naming the fields when the same id came with other
    content."""
    record = await session.get(HotlineUpdateRecord, (case.case_id, body.update_id))
    if record is None:
        return None
    now = fingerprint(body, secret)
    differing = sorted(name for name in now.keys() | record.fingerprint.keys()
                       if now.get(name) != record.fingerprint.get(name))
    if differing:
        raise StepConflict(
            "update_conflict", f"update {body.update_id} of this order was received with "
            f"other content (in {', '.join(differing)}): an update, once received, is not "
            "changed; send a new update_id", differing,
            reason_zh=f"与首次收到的更新（{body.update_id}）内容不同；已收到的更新不会被修改，"
            "请使用新的 update_id", update_id=body.update_id)
    return HotlineUpdateResult.model_validate(record.result)


async def reserve(session: AsyncSession, case: Case, body: HotlineUpdate, secret: str,
                  now: datetime) -> HotlineUpdateRecord:
    """Claim the update's id before taking its step: the same update arriving twice at once
    waits here for the first, then fails on the key (IntegrityError) and is answered from
    it."""
    record = HotlineUpdateRecord(case_id=case.case_id, update_id=body.update_id,
                                 kind=body.kind.value, fingerprint=fingerprint(body, secret),
                                 result={}, at=now)
    session.add(record)
    await session.flush()
    return record


# --- the steps ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Applied:
    entries: list[dict[str, Any]]
    notice: HotlineNoticeRef | None = None


async def apply_update(session: AsyncSession, case: Case, body: HotlineUpdate, *, actor: str,
                       key_id: str, at: datetime, settings: Settings) -> Applied:
    """Take the update's step on the case. Raises StepDataInvalid, StepNotNow, StaleVersion,
    IllegalTransition or StepConflict (the API answers each)."""
    match body.kind:
        case K.SUPPLEMENT:
            return Applied([await _supplement(session, case, body, actor, at)])
        case K.CHASER:
            return await _chaser(session, case, body, actor, key_id, at, settings)
        case K.DEADLINE_CHANGE:
            return Applied([await _deadline_change(session, case, body, actor, at,
                                                   urgency_limits(settings.routing_rules_path))])
        case K.FOLLOW_UP:
            return Applied(await _follow_up(session, case, body, actor, at))
    raise AssertionError(body.kind)  # pragma: no cover - every kind is matched above


def _allowed(what: str, case: Case, statuses: frozenset[Status]) -> None:
    status = Status(case.status)
    if status not in statuses:
        raise StepNotNow(what, status, statuses)


async def _supplement(session: AsyncSession, case: Case, body: HotlineUpdate, actor: str,
                      at: datetime) -> dict[str, Any]:
    _allowed("supplement from the hotline", case, SUPPLEMENT_STATUSES)
    return await record_activity(
        session, case, CaseActivity.HOTLINE_SUPPLEMENT, actor=scrub(actor), at=at,
        reason=None, data=TransitionData(notes=scrub(body.text or ""),
                                         update_id=body.update_id))


async def _chaser(session: AsyncSession, case: Case, body: HotlineUpdate, actor: str,
                  key_id: str, at: datetime, settings: Settings) -> Applied:
    _allowed("chaser", case, CHASER_STATUSES)
    asked = "12345热线转来群众催办" + (f"：{scrub(body.text)}" if body.text else "")
    try:
        notice, action = await supervision_notices.press(
            session, case, asked=asked,
            answer_within=timedelta(hours=settings.hotline_chaser_answer_hours),
            actor=actor, key_id=key_id, now=at, occasion=body.update_id)
    except supervision_notices.NoticeRefused as exc:
        raise StepConflict("notice_changed", str(exc), [exc.field or "notice_id"]) from None
    chasers = case.chasers + 1
    entry = await record_activity(
        session, case, CaseActivity.HOTLINE_CHASER, actor=scrub(actor), at=at,
        reason=supervision_notices.LEVELS_ZH[NoticeLevel(notice.level)],
        data=TransitionData(notes=scrub(body.text) if body.text else None,
                            update_id=body.update_id, chasers=chasers,
                            notice_id=notice.notice_id),
        changes={"chasers": chasers})
    return Applied([entry], HotlineNoticeRef(notice_id=notice.notice_id, action=action,
                                             level=NoticeLevel(notice.level),
                                             answer_by=notice.answer_by))


async def _deadline_change(session: AsyncSession, case: Case, body: HotlineUpdate,
                           actor: str, at: datetime,
                           table: dict[Urgency, UrgencyLimits]) -> dict[str, Any]:
    status = Status(case.status)
    deadline = body.deadline
    if deadline is not None:
        if deadline <= case.received_at:
            raise StepDataInvalid(status, [DataProblem(
                "deadline", "must be after the case's receipt "
                f"({case.received_at.isoformat()})")])
        if deadline <= at:
            raise StepDataInvalid(status, [DataProblem("deadline", "is in the past")])
    _allowed("deadline change", case, DEADLINE_STATUSES)
    asked = table.get(body.urgency) if body.urgency else None
    # The order's limits as the router reads them: its deadline and its urgency's lengths
    # from the order's receipt, the earlier; now the hotline's, later or earlier than before.
    candidates = [deadline] if deadline else []
    if asked and asked.resolve_days:
        candidates.append(case.received_at + timedelta(days=asked.resolve_days))
    changes: dict[str, Any] = {}
    data: dict[str, Any] = {"update_id": body.update_id, "urgency": body.urgency}
    if candidates:
        changes.update(resolve_by=min(candidates), resolve_by_source=LimitSource.HOTLINE.value)
        data["resolve_by"] = changes["resolve_by"]
    # The urgency's acceptance limit binds while the first department has not signed for
    # the order (as at routing: 签收 happens once).
    if (asked and asked.accept_hours and status in RUNS_IN[SlaKind.ACCEPTANCE]
            and case.accept_from is None):
        changes.update(accept_by=case.received_at + timedelta(hours=asked.accept_hours),
                       accept_by_source=LimitSource.HOTLINE.value)
        data["accept_by"] = changes["accept_by"]
    return await record_activity(
        session, case, CaseActivity.HOTLINE_DEADLINE_CHANGE, actor=scrub(actor), at=at,
        reason=scrub(body.text) if body.text else None, data=TransitionData(**data),
        changes=changes)


async def _follow_up(session: AsyncSession, case: Case, body: HotlineUpdate, actor: str,
                     at: datetime) -> list[dict[str, Any]]:
    """The hotline's return visit, as the centre's own: `visited` with its notes (from
    `closed`), then `rated` with the satisfaction. A case already rated keeps its rating."""
    if case.satisfaction is not None:
        raise StepConflict(
            "follow_up_recorded", f"the case already has a follow-up result (satisfaction "
            f"{case.satisfaction}): it is not replaced", ["satisfaction"],
            reason_zh=f"该案件已有回访结果（满意度 {case.satisfaction}），不予覆盖",
            satisfaction=case.satisfaction)
    _allowed("follow-up", case, FOLLOW_UP_STATUSES)
    steps: list[dict[str, Any]] = []
    if Status(case.status) is S.CLOSED:
        steps += await transition_case(session, case, TransitionRequest(
            to_status=S.VISITED, actor=actor, expected_version=case.version,
            data=StepInput(visit_notes=body.text)), at)
    steps += await transition_case(session, case, TransitionRequest(
        to_status=S.RATED, actor=actor, expected_version=case.version,
        reason="12345热线回访结果",
        data=StepInput(satisfaction=body.satisfaction,
                       notes=None if steps else body.text)), at)
    return steps

