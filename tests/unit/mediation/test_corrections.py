"""What a correction does to a case: the acceptance limit starts again for the new
department, the overall limit keeps running, the dispatch queue has no lead, and a
dispatcher's decision keeps the case's category and risk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.api_mediation import AssignmentRequest
from contracts.enums import Category, Channel, CorrectionKind, Department, Risk, Status, Tier
from contracts.events import CaseRouted, Correction, Explanation, RoutingDecision, Sla
from services.mediation.domain.lifecycle import check_reason
from services.mediation.domain.time_limits import LimitOverrides
from services.mediation.handlers import assignment_decision, routing_changes
from services.mediation.store import Case

RECEIVED = datetime(2026, 12, 1, 8, tzinfo=UTC)
RETURNED_AT = RECEIVED + timedelta(hours=5)
NO_OVERRIDES = LimitOverrides()


def decision(lead: Department = Department.VILLAGE_MEDIATION, start: datetime = RECEIVED
             ) -> RoutingDecision:
    return RoutingDecision(
        category=Category.NEIGHBOR, category_confidence=0.9, risk=Risk.BLUE, tier=Tier.VILLAGE,
        lead_department=lead, sla=Sla(accept_by=start + timedelta(hours=24),
                                      resolve_by=start + timedelta(days=7)),
        rules_fired=["lead.village_tier"], explanation=Explanation(zh="测试", en="test"),
        rules_version="test")


def routed_case(status: Status = Status.ROUTED) -> Case:
    first = decision()
    return Case(case_id="C1", channel=Channel.HOTLINE_12345.value, external_id="WO-1",
                status=status.value, version=3, received_at=RECEIVED,
                updated_at=RECEIVED, cooperating_departments=[], routing_round=1,
                lead_department=Department.VILLAGE_MEDIATION.value, tier=Tier.VILLAGE.value,
                decision=first.model_dump(mode="json"), limits_from=RECEIVED,
                accept_by=first.sla.accept_by, resolve_by=first.sla.resolve_by,
                acceptance_supervised="warning", resolution_supervised="warning")


def rerouted(awaiting: bool = False) -> CaseRouted:
    return CaseRouted(
        case_id="C1", channel=Channel.HOTLINE_12345, external_id="WO-1", received_at=RECEIVED,
        routed_at=RETURNED_AT, routing_round=2,
        decision=decision(Department.JUDICIAL_OFFICE, start=RETURNED_AT),
        correction=Correction(kind=CorrectionKind.RETURN, by="村调委", reason="不属本部门",
                              previous_lead_department=Department.VILLAGE_MEDIATION),
        awaiting_dispatch=awaiting)


def test_after_a_return_acceptance_starts_again_and_the_overall_limit_runs_on() -> None:
    case = routed_case(Status.RETURNED)
    changes = routing_changes(case, rerouted(), NO_OVERRIDES)
    assert changes["lead_department"] == "judicial_office"
    assert changes["accept_from"] == RETURNED_AT
    assert changes["accept_by"] == RETURNED_AT + timedelta(hours=24)
    assert changes["acceptance_supervised"] is None
    # Neither the overall limit nor its supervision so far is touched.
    assert {"limits_from", "resolve_by", "resolution_supervised"}.isdisjoint(changes)
    assert "routed_lead_department" not in changes  # the router's first choice stays


def test_the_dispatch_queue_has_no_lead_department() -> None:
    changes = routing_changes(routed_case(Status.RETURNED), rerouted(awaiting=True),
                              NO_OVERRIDES)
    assert (changes["lead_department"], changes["cooperating_departments"]) == (None, [])


def test_a_dispatchers_decision_keeps_category_risk_and_the_overall_limit() -> None:
    case = routed_case(Status.AWAITING_DISPATCH)
    request = AssignmentRequest(
        lead_department=Department.HOUSING_CONSTRUCTION, tier=Tier.TOWN,
        cooperating_departments=[Department.HOUSING_CONSTRUCTION, Department.JUDICIAL_OFFICE,
                                 Department.JUDICIAL_OFFICE],
        reason="物业噪音，住建牵头", expected_version=3)
    routed = assignment_decision(case, request, "分拨员", RETURNED_AT)
    assert routed.routing_round == 2 and routed.correction is not None
    assert routed.correction.kind is CorrectionKind.DISPATCH
    made = routed.decision
    assert (made.category, made.risk, made.tier) == (Category.NEIGHBOR, Risk.BLUE, Tier.TOWN)
    assert made.cooperating_departments == [Department.JUDICIAL_OFFICE]
    assert made.rules_fired == ["dispatch by 分拨员: 物业噪音，住建牵头"]
    assert made.sla.resolve_by == case.resolve_by
    assert made.sla.accept_by == RETURNED_AT + timedelta(hours=24)  # as long as the last


def test_a_reassignment_of_a_routed_case_names_the_department_it_leaves() -> None:
    request = AssignmentRequest(lead_department=Department.CIVIL_AFFAIRS, tier=Tier.VILLAGE,
                                reason="改派", expected_version=3)
    routed = assignment_decision(routed_case(), request, "分拨员", RETURNED_AT)
    assert routed.correction is not None
    assert routed.correction.kind is CorrectionKind.REASSIGN
    assert routed.correction.previous_lead_department is Department.VILLAGE_MEDIATION


def test_a_return_needs_a_reason() -> None:
    assert [p.field for p in check_reason(Status.RETURNED, "  ")] == ["reason"]
    assert check_reason(Status.RETURNED, "不属本部门") == []
    assert check_reason(Status.ACCEPTED, None) == []
