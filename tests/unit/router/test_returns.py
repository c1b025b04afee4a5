"""A returned case routed again (退回): the same tier, never to a department that returned
it, the suggestion first, and a person after two returns or with nobody left."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts.enums import Channel, Department, Tier
from contracts.events import CaseReported
from services.router.domain import load_jurisdictions, load_rules
from services.router.domain.policy import route_case
from services.router.domain.returns import Returned, candidates, for_the_queue, reroute

ROOT = Path(__file__).resolve().parents[3]
RULES = load_rules(ROOT / "services/router/rules/default.yaml")
TREE = load_jurisdictions(ROOT / "services/router/data/jurisdictions.yaml")
D = Department
NOISE = CaseReported(case_id="R1", channel=Channel.HOTLINE_12345, external_id="R1",
                     received_at=datetime(2026, 12, 1, tzinfo=UTC),
                     text="楼上邻居每天深夜噪音扰民，多次沟通无果。")
AT = datetime(2026, 12, 2, tzinfo=UTC)


def returned(*by: Department, suggested: Department | None = None) -> Returned:
    return Returned(department=by[-1], reason="不属本部门", returns=len(by), returned_by=by,
                    suggested=suggested)


def test_a_return_keeps_the_tier_the_rules_would_not_choose_now() -> None:
    decision = route_case(NOISE, RULES, TREE, routing_round=2, keep_tier=Tier.TOWN, now=AT)
    assert decision.tier is Tier.TOWN
    assert "tier.kept_on_return" in decision.rules_fired
    assert decision.sla.accept_by > AT  # the new acceptance limit counts from the return


def test_the_next_department_leads_and_the_one_that_returned_it_is_gone() -> None:
    first = route_case(NOISE, RULES, TREE)
    assert (first.lead_department, first.cooperating_departments) == (
        D.VILLAGE_MEDIATION, [D.JUDICIAL_OFFICE])
    again = reroute(route_case(NOISE, RULES, TREE, routing_round=2, keep_tier=Tier.VILLAGE,
                               now=AT), returned(D.VILLAGE_MEDIATION), RULES, 2)
    assert again is not None
    assert again.lead_department is D.JUDICIAL_OFFICE
    assert D.VILLAGE_MEDIATION not in again.cooperating_departments
    assert "returned by village_mediation: 不属本部门" in again.rules_fired
    assert "lead.after_return.next" in again.rules_fired
    assert again.explanation.en.startswith("round 2: returned by village_mediation: 不属本部门")


def test_the_suggestion_comes_first_unless_it_returned_the_case_itself() -> None:
    decision = route_case(NOISE, RULES, TREE)
    suggested = reroute(decision, returned(D.VILLAGE_MEDIATION, suggested=D.CIVIL_AFFAIRS),
                        RULES, 2)
    assert suggested is not None and suggested.lead_department is D.CIVIL_AFFAIRS
    assert "lead.after_return.suggested" in suggested.rules_fired
    own = candidates(decision, returned(D.VILLAGE_MEDIATION,
                                        suggested=D.VILLAGE_MEDIATION), RULES)
    assert D.VILLAGE_MEDIATION not in own


@pytest.mark.parametrize("by", [
    (D.VILLAGE_MEDIATION, D.JUDICIAL_OFFICE),      # returned twice
    (D.VILLAGE_MEDIATION, D.VILLAGE_MEDIATION),    # twice by one department
])
def test_the_second_return_goes_to_a_person(by: tuple[Department, ...]) -> None:
    decision = route_case(NOISE, RULES, TREE)
    assert reroute(decision, returned(*by), RULES, 3) is None
    queued = for_the_queue(decision, returned(*by), 3)
    assert "dispatch.queue" in queued.rules_fired
    assert "returned twice" in queued.explanation.en


def test_with_nobody_left_a_person_decides_after_one_return() -> None:
    decision = route_case(NOISE, RULES, TREE)
    everyone = (*candidates(decision, returned(D.COURT), RULES), D.COURT)
    nobody = Returned(department=D.COURT, reason="x", returns=1, returned_by=everyone)
    assert candidates(decision, nobody, RULES) == []
    assert reroute(decision, nobody, RULES, 2) is None
    assert "no department left" in for_the_queue(decision, nobody, 2).explanation.en
