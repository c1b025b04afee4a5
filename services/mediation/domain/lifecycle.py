"""The case lifecycle of DOMAIN.md as a pure state machine: who may go where, what data each
step needs, and which milestones a step records on the case."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.enums import Status
from contracts.events import TransitionData

S = Status

# Who may go where. `withdrawn` (撤回) is allowed from every state before `closed`.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.REPORTED: frozenset({S.ROUTED, S.WITHDRAWN}),
    S.ROUTED: frozenset({S.ACCEPTED, S.ROUTED, S.RETURNED, S.RETURNED_TO_SOURCE, S.WITHDRAWN}),
    S.ACCEPTED: frozenset({S.IN_MEDIATION, S.ROUTED, S.RETURNED, S.RETURNED_TO_SOURCE,
                           S.WITHDRAWN}),
    S.IN_MEDIATION: frozenset({S.RESOLVED, S.FAILED, S.WITHDRAWN}),
    S.RESOLVED: frozenset({S.CLOSED, S.WITHDRAWN}),
    S.FAILED: frozenset({S.ESCALATED, S.REFERRED, S.WITHDRAWN}),
    S.ESCALATED: frozenset({S.ROUTED, S.WITHDRAWN}),
    S.REFERRED: frozenset({S.CLOSED}),
    # Returned (退回) before mediation: the router routes it again, or puts it in the queue.
    S.RETURNED: frozenset({S.ROUTED, S.AWAITING_DISPATCH, S.WITHDRAWN}),
    # The dispatch queue: a dispatcher assigns it (routed) or sends it back to the hotline.
    S.AWAITING_DISPATCH: frozenset({S.ROUTED, S.RETURNED_TO_SOURCE, S.WITHDRAWN}),
    S.RETURNED_TO_SOURCE: frozenset({S.CLOSED}),
    S.WITHDRAWN: frozenset({S.CLOSED}),
    S.CLOSED: frozenset({S.VISITED}),
    S.VISITED: frozenset({S.RATED}),
    S.RATED: frozenset({S.ARCHIVED}),
    S.ARCHIVED: frozenset(),
    # Merged into a main case (合并): nobody moves it by a step; merging.py closes it with
    # the main case, or unmerges it.
    S.MERGED: frozenset(),
}

# "Closed" in the figures means closed or any later step of the closed loop.
CLOSED_STATUSES = frozenset({S.CLOSED, S.VISITED, S.RATED, S.ARCHIVED})
# A merged report is worked on its main case: open in neither sense.
OPEN_STATUSES = frozenset(s for s in Status if s not in CLOSED_STATUSES and s is not S.MERGED)

# Set only by events or the assignment API: a report arriving (reported) and the router's
# decision (routed, including escalated → routed when the router routes a failed case again,
# and returned → routed or awaiting_dispatch after a return), or a dispatcher's (routed).
EVENT_ONLY = frozenset({S.REPORTED, S.ROUTED, S.AWAITING_DISPATCH})

# Where a dispatcher may assign a case by hand (POST .../assignment): not while the router
# works on a return (returned), nor once mediation has started.
ASSIGNABLE = frozenset({S.ROUTED, S.ACCEPTED, S.AWAITING_DISPATCH})

# Steps only a dispatcher (scope cases:dispatch) may take.
DISPATCHER_ONLY = frozenset({S.RETURNED_TO_SOURCE})

# Referral onward (诉讼, 仲裁, 行政处理) closes the case (DOMAIN.md): the `referred` step is
# followed in the same transaction by `closed`, so a case never rests in `referred`.
# A 12345 case returned to the hotline (退单) closes here the same way.
CLOSES_AUTOMATICALLY: dict[Status, Status] = {S.REFERRED: S.CLOSED,
                                              S.RETURNED_TO_SOURCE: S.CLOSED}


def allowed_next(status: Status) -> frozenset[Status]:
    return TRANSITIONS[status]


def can_transition(current: Status, target: Status) -> bool:
    return target in TRANSITIONS[current]


def staff_targets(current: Status) -> frozenset[Status]:
    """Where staff (the transitions API) may move a case from `current`."""
    return TRANSITIONS[current] - EVENT_ONLY


class TransitionRefused(Exception):
    """A requested transition that cannot happen; the API answers it with an error."""


class IllegalTransition(TransitionRefused):
    def __init__(self, current: Status, target: Status) -> None:
        self.current = current
        self.target = target
        self.allowed = sorted(staff_targets(current))
        if target in EVENT_ONLY:
            why = f"'{target}' is set by events, not by staff"
        else:
            why = f"a case in '{current}' cannot go to '{target}'"
        allowed = ", ".join(self.allowed) or "none (the case is archived)"
        super().__init__(f"{why}; allowed from '{current}': {allowed}")


class StaleVersion(TransitionRefused):
    def __init__(self, expected: int, current: int) -> None:
        self.expected = expected
        self.current = current
        super().__init__(f"the case is at version {current}, not {expected}: "
                         "someone changed it meanwhile; reload it and try again")


@dataclass(frozen=True)
class DataProblem:
    field: str
    reason: str


class StepDataInvalid(TransitionRefused):
    def __init__(self, target: Status, problems: list[DataProblem]) -> None:
        self.target = target
        self.problems = problems
        super().__init__(f"the data for '{target}' is incomplete or does not belong to it")


@dataclass(frozen=True)
class StepData:
    """The data fields a step needs, and those it may carry besides (`notes` always may)."""

    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()


STEP_DATA: dict[Status, StepData] = {
    S.ACCEPTED: StepData(optional=("mediator",)),
    S.IN_MEDIATION: StepData(optional=("mediator",)),
    S.RESOLVED: StepData(required=("agreement", "agreement_amount")),
    S.FAILED: StepData(required=("failure_reason",)),
    S.REFERRED: StepData(required=("referral",)),
    S.VISITED: StepData(required=("visit_notes",)),
    S.RATED: StepData(required=("satisfaction",)),
    S.RETURNED: StepData(optional=("suggested_department",)),
}

# Steps that need a reason (the request's `reason`): why the case was returned.
NEEDS_REASON = frozenset({S.RETURNED, S.RETURNED_TO_SOURCE})


def check_step_data(target: Status, data: TransitionData) -> list[DataProblem]:
    """What is missing from, or does not belong to, the data of a step to `target`."""
    step = STEP_DATA.get(target, StepData())
    problems: list[DataProblem] = []
    for name in step.required:
        value = getattr(data, name)
        if value is None or (isinstance(value, str) and not value.strip()):
            problems.append(DataProblem(f"data.{name}", f"required when moving to '{target}'"))
    belongs = {*step.required, *step.optional, "notes"}
    for name in sorted(data.model_fields_set - belongs):
        if getattr(data, name) is not None:
            problems.append(DataProblem(f"data.{name}", f"not part of a step to '{target}'"))
    return problems


def check_reason(target: Status, reason: str | None) -> list[DataProblem]:
    if target in NEEDS_REASON and not (reason and reason.strip()):
        return [DataProblem("reason", f"required when moving to '{target}'")]
    return []


class NotAssignable(TransitionRefused):
    def __init__(self, current: Status) -> None:
        self.current = current
        self.allowed = sorted(ASSIGNABLE)
        super().__init__(f"a case in '{current}' cannot be assigned by hand; it can in: "
                         + ", ".join(self.allowed))


def check_assignment(current: Status) -> None:
    """Raise NotAssignable unless a dispatcher may assign a case in `current`."""
    if current not in ASSIGNABLE:
        raise NotAssignable(current)


def check_transition(current: Status, target: Status) -> None:
    """Raise IllegalTransition unless staff may move a case from `current` to `target`."""
    if target not in staff_targets(current):
        raise IllegalTransition(current, target)


@dataclass(frozen=True)
class Milestones:
    """When the case first reached the steps the figures count."""

    mediated_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None


def step_changes(target: Status, at: datetime, data: TransitionData,
                 reached: Milestones) -> dict[str, Any]:
    """The case fields a step to `target` sets, besides status and version.

    Milestones keep the first time (a case mediated in round 1 and again after escalation
    was mediated once for the figures); `accepted_at` and `escalated_at` keep the latest.
    """
    changes: dict[str, Any] = {}
    if data.mediator is not None:
        changes["mediator"] = data.mediator
    if target is S.ACCEPTED:
        changes["accepted_at"] = at
    elif target is S.IN_MEDIATION and reached.mediated_at is None:
        changes["mediated_at"] = at
    elif target is S.RESOLVED and reached.resolved_at is None:
        changes["resolved_at"] = at
    elif target is S.ESCALATED:
        changes["escalated_at"] = at
    elif target is S.REFERRED:
        changes["referral"] = data.referral.value if data.referral else None
    elif target is S.CLOSED and reached.closed_at is None:
        changes["closed_at"] = at
    elif target is S.RATED:
        changes["satisfaction"] = data.satisfaction
    return changes
