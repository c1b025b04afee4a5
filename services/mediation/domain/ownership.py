"""Leader ownership (领导包案): which cases a leader is proposed for. Zhangye's centre
handles repeat matters "one problem, one team, one plan" under a leader; red cases too."""

from __future__ import annotations

from contracts.enums import Risk
from contracts.events import RoutingDecision
from services.mediation.domain.figures import prior_related_count

# Two or more prior related cases (the router's count: same phone or id number within 90
# days) make a matter a leader's.
PRIOR_RELATED_FOR_LEADER = 2


def owner_proposed(decision: RoutingDecision) -> bool:
    """A leader owner is proposed for a red case, or one with two or more prior related."""
    return (decision.risk is Risk.RED
            or prior_related_count(decision) >= PRIOR_RELATED_FOR_LEADER)
