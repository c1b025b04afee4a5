"""The case lifecycle of DOMAIN.md as a pure state machine."""

from __future__ import annotations

from contracts.enums import Status

S = Status

# Who may go where. `withdrawn` (撤回) is allowed from every state before `closed`.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.REPORTED: frozenset({S.ROUTED, S.WITHDRAWN}),
    S.ROUTED: frozenset({S.ACCEPTED, S.ROUTED, S.WITHDRAWN}),
    S.ACCEPTED: frozenset({S.IN_MEDIATION, S.WITHDRAWN}),
    S.IN_MEDIATION: frozenset({S.RESOLVED, S.FAILED, S.WITHDRAWN}),
    S.RESOLVED: frozenset({S.CLOSED, S.WITHDRAWN}),
    S.FAILED: frozenset({S.ESCALATED, S.REFERRED, S.WITHDRAWN}),
    S.ESCALATED: frozenset({S.ROUTED, S.WITHDRAWN}),
    S.REFERRED: frozenset({S.CLOSED}),
    S.WITHDRAWN: frozenset({S.CLOSED}),
    S.CLOSED: frozenset({S.VISITED}),
    S.VISITED: frozenset({S.RATED}),
    S.RATED: frozenset({S.ARCHIVED}),
    S.ARCHIVED: frozenset(),
}

OPEN_STATUSES = frozenset(s for s in Status if s not in {
    S.CLOSED, S.VISITED, S.RATED, S.ARCHIVED})


def allowed_next(status: Status) -> frozenset[Status]:
    return TRANSITIONS[status]


def can_transition(current: Status, target: Status) -> bool:
    return target in TRANSITIONS[current]
