"""The steps of a 12345 work order between acceptance and result that are not changes of
status: progress notes (过程反馈), extension requests (延期申请) by the lead department, and
the hotline's answer to them (an approval moves the case's resolution limit).

Each is recorded like a transition — the case's version bumped conditionally, a history
row, a case.lifecycle.v1 event with `activity` set, in one transaction — so it reaches the
hotline's callback (notify) in the case's order, between 签收 and 办结."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contracts.api_mediation import ExtensionAnswer, ExtensionRequest, ProgressNoteRequest
from contracts.enums import CaseActivity, Channel, ExtensionDecision, LimitSource, Status
from contracts.events import TransitionData
from kit.privacy import scrub
from services.mediation import store
from services.mediation.domain.lifecycle import DataProblem, StaleVersion, StepDataInvalid
from services.mediation.handlers import StaleCase, record_transition
from services.mediation.store import Case

S = Status
# A note says what the lead department did: from routing until the result is recorded.
NOTE_STATUSES = frozenset({S.ROUTED, S.ACCEPTED, S.IN_MEDIATION, S.RESOLVED, S.FAILED})
# An extension moves the resolution limit: asked for while it runs and a department holds
# the case.
EXTENSION_STATUSES = frozenset({S.ROUTED, S.ACCEPTED, S.IN_MEDIATION})
# The hotline's answer is recorded while a department holds the case (or a dispatcher is
# about to): not once it is closed, nor while the router routes it again.
ANSWER_STATUSES = NOTE_STATUSES | {S.AWAITING_DISPATCH}
PENDING, APPROVED, DENIED = "pending", "approved", "denied"


class StepNotNow(Exception):
    """The case is in a status where this step does not fit (409)."""

    def __init__(self, what: str, current: Status, allowed: frozenset[Status]) -> None:
        self.current = current
        self.allowed = sorted(allowed)
        super().__init__(f"a case in '{current}' takes no {what}; it does in: "
                         + ", ".join(self.allowed))


class StepConflict(Exception):
    """A true conflict about a step of the order (409): an extension already pending or
    answered, an update sent again with other content; naming the fields concerned, with
    the reason in Chinese too when there is one."""

    def __init__(self, code: str, message: str, fields: list[str], *,
                 reason_zh: str | None = None, **extra: Any) -> None:
        self.code = code
        self.fields = fields
        self.reason_zh = reason_zh
        self.extra = extra
        super().__init__(message)


def _check_version(case: Case, expected: int | None) -> None:
    if expected is not None and case.version != expected:
        raise StaleVersion(expected, case.version)


async def record_activity(session: AsyncSession, case: Case, activity: CaseActivity, *,
                          actor: str, at: datetime, reason: str | None, data: TransitionData,
                          changes: dict[str, Any] | None = None, expected: int | None = None
                          ) -> dict[str, Any]:
    """An activity on the case (its status unchanged, its version + 1), as a transition is
    recorded. Raises StaleVersion if someone changed the case since it was read."""
    try:
        return await record_transition(session, case, Status(case.status), actor=actor, at=at,
                                       reason=reason, data=data, changes=changes,
                                       activity=activity)
    except StaleCase:
        current = await store.current_version(session, case.case_id)
        raise StaleVersion(expected or case.version, current or 0) from None


async def add_progress_note(session: AsyncSession, case: Case, body: ProgressNoteRequest,
                            actor: str, at: datetime) -> dict[str, Any]:
    """过程反馈: a note in the case's history, and to the hotline. Raises StaleVersion or
    StepNotNow."""
    _check_version(case, body.expected_version)
    status = Status(case.status)
    if status not in NOTE_STATUSES:
        raise StepNotNow("progress note", status, NOTE_STATUSES)
    return await record_activity(session, case, CaseActivity.PROGRESS_NOTE, actor=scrub(actor), at=at,
                         reason=None, data=TransitionData(notes=scrub(body.note)),
                         expected=body.expected_version)


@dataclass(frozen=True)
class Requested:
    entry: dict[str, Any]
    extension_id: str


async def request_extension(session: AsyncSession, case: Case, body: ExtensionRequest,
                            actor: str, at: datetime) -> Requested:
    """延期申请 by the lead department: a new resolution date and why, pending the hotline's
    answer. Raises StepDataInvalid, StaleVersion, StepNotNow or StepConflict."""
    if case.channel != Channel.HOTLINE_12345:
        raise StepConflict(
            "not_a_hotline_order", "only a 12345 work order's limit is extended, by the "
            "hotline; this case came from another channel", ["channel"],
            channel=case.channel)
    if case.resolve_by is not None and body.requested_resolve_by <= case.resolve_by:
        raise StepDataInvalid(Status(case.status), [DataProblem(
            "requested_resolve_by", "must be after the case's current resolve_by "
            f"({case.resolve_by.isoformat()})")])
    _check_version(case, body.expected_version)
    status = Status(case.status)
    if status not in EXTENSION_STATUSES:
        raise StepNotNow("extension request", status, EXTENSION_STATUSES)
    if case.extension_status == PENDING:
        raise StepConflict(
            "extension_pending", f"extension request {case.extension_id} is still waiting "
            "for the hotline's answer: one at a time", ["extension_id"],
            extension_id=case.extension_id)
    extension_id = f"ext_{uuid.uuid4().hex[:20]}"
    entry = await record_activity(
        session, case, CaseActivity.EXTENSION_REQUESTED, actor=scrub(actor), at=at,
        reason=scrub(body.reason),
        data=TransitionData(extension_id=extension_id,
                            requested_resolve_by=body.requested_resolve_by),
        changes={"extension_id": extension_id, "extension_status": PENDING,
                 "extension_requested_resolve_by": body.requested_resolve_by},
        expected=body.expected_version)
    return Requested(entry, extension_id)


async def answer_extension(session: AsyncSession, case: Case, body: ExtensionAnswer,
                           actor: str, at: datetime) -> dict[str, Any] | None:
    """The hotline's answer (延期审核). Approved: the resolution limit moves (its source
    `extension`). The same answer again changes nothing (None); another answer to a request
    already answered is StepConflict; an unknown request StepDataInvalid."""
    if case.extension_id is None or body.extension_id != case.extension_id:
        raise StepDataInvalid(Status(case.status), [DataProblem(
            "extension_id", "not an extension request of this work order"
            + (f" (its latest is {case.extension_id})" if case.extension_id else
               " (it has none)"))])
    if case.extension_status != PENDING:
        if case.extension_status == body.decision.value:
            return None  # a repeat of the answer given: nothing to do
        raise StepConflict(
            "extension_answered", f"extension request {case.extension_id} was already "
            f"{case.extension_status}", ["decision"], decision=case.extension_status)
    status = Status(case.status)
    if status not in ANSWER_STATUSES:
        raise StepNotNow("answer to an extension request", status, ANSWER_STATUSES)
    approved = body.decision is ExtensionDecision.APPROVED
    changes: dict[str, Any] = {"extension_status": body.decision.value}
    data: dict[str, Any] = {"extension_id": case.extension_id,
                            "extension_decision": body.decision}
    if approved:
        new_limit = body.resolve_by or case.extension_requested_resolve_by
        start = case.limits_from or case.received_at
        if new_limit is None or new_limit <= start:
            raise StepDataInvalid(Status(case.status), [DataProblem(
                "resolve_by", f"must be after the limit's start ({start.isoformat()})")])
        changes.update(resolve_by=new_limit, resolve_by_source=LimitSource.EXTENSION.value)
        data["resolve_by"] = new_limit
    activity = (CaseActivity.EXTENSION_APPROVED if approved
                else CaseActivity.EXTENSION_DENIED)
    return await record_activity(session, case, activity, actor=scrub(actor), at=at,
                         reason=scrub(body.reason) if body.reason else None,
                         data=TransitionData(**data), changes=changes)
