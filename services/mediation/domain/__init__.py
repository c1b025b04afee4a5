"""Mediation's pure logic: the lifecycle state machine (lifecycle), time limits and
supervision (time_limits) and the figures the centres report (figures). No I/O here."""

from services.mediation.domain.lifecycle import (
    OPEN_STATUSES,
    TRANSITIONS,
    allowed_next,
    can_transition,
)

__all__ = ["OPEN_STATUSES", "TRANSITIONS", "allowed_next", "can_transition"]
