"""What staff may do at each step of the lifecycle, and what each step needs and records."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.enums import Referral, Status
from contracts.events import TransitionData
from services.mediation.domain.lifecycle import (
    CLOSED_STATUSES,
    CLOSES_AUTOMATICALLY,
    EVENT_ONLY,
    STEP_DATA,
    TRANSITIONS,
    IllegalTransition,
    Milestones,
    check_step_data,
    check_transition,
    staff_targets,
    step_changes,
)

S = Status
AT = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
PAIRS = [(current, target) for current in Status for target in Status]


@pytest.mark.parametrize("current,target", PAIRS)
def test_staff_may_take_exactly_the_state_machine_steps_events_do_not_own(
        current: Status, target: Status) -> None:
    legal = target in TRANSITIONS[current] and target not in EVENT_ONLY
    if legal:
        check_transition(current, target)
    else:
        with pytest.raises(IllegalTransition) as refused:
            check_transition(current, target)
        assert refused.value.allowed == sorted(TRANSITIONS[current] - EVENT_ONLY)
        assert str(current) in str(refused.value)


def test_routed_is_refused_with_a_reason_naming_the_router() -> None:
    with pytest.raises(IllegalTransition, match="set by events"):
        check_transition(S.ESCALATED, S.ROUTED)


def test_the_archive_allows_nothing_and_says_so() -> None:
    assert staff_targets(S.ARCHIVED) == frozenset()
    with pytest.raises(IllegalTransition, match="archived"):
        check_transition(S.ARCHIVED, S.CLOSED)


def test_referral_and_return_to_the_hotline_close_the_case_at_once() -> None:
    assert CLOSES_AUTOMATICALLY == {S.REFERRED: S.CLOSED, S.RETURNED_TO_SOURCE: S.CLOSED}
    assert S.CLOSED in TRANSITIONS[S.REFERRED]
    assert S.CLOSED in TRANSITIONS[S.RETURNED_TO_SOURCE]


def test_events_own_reported_routed_and_the_dispatch_queue_only() -> None:
    assert EVENT_ONLY == {S.REPORTED, S.ROUTED, S.AWAITING_DISPATCH}
    assert CLOSED_STATUSES == {S.CLOSED, S.VISITED, S.RATED, S.ARCHIVED}


@pytest.mark.parametrize("target,field", [(t, f) for t, step in STEP_DATA.items()
                                          for f in step.required])
def test_a_step_without_its_required_data_names_the_field(target: Status, field: str) -> None:
    problems = check_step_data(target, TransitionData())
    assert f"data.{field}" in {p.field for p in problems}


@pytest.mark.parametrize("data,target", [
    (TransitionData(agreement="双方同意分期还款", agreement_amount=0), S.RESOLVED),
    (TransitionData(failure_reason="被申请人拒绝调解"), S.FAILED),
    (TransitionData(referral=Referral.ARBITRATION), S.REFERRED),
    (TransitionData(visit_notes="电话回访，当事人表示满意"), S.VISITED),
    (TransitionData(satisfaction=1), S.RATED),
    (TransitionData(mediator="王调解员", notes="今日受理"), S.ACCEPTED),
    (TransitionData(), S.CLOSED),
])
def test_complete_step_data_passes(data: TransitionData, target: Status) -> None:
    assert check_step_data(target, data) == []


def test_blank_text_is_missing() -> None:
    problems = check_step_data(S.FAILED, TransitionData(failure_reason="   "))
    assert [p.field for p in problems] == ["data.failure_reason"]


def test_data_of_another_step_is_refused_not_dropped() -> None:
    problems = check_step_data(S.ACCEPTED, TransitionData(satisfaction=5))
    assert [(p.field, p.reason) for p in problems] == [
        ("data.satisfaction", "not part of a step to 'accepted'")]


def test_steps_record_the_milestones_the_figures_count() -> None:
    none = Milestones()
    assert step_changes(S.ACCEPTED, AT, TransitionData(mediator="李"), none) == {
        "accepted_at": AT, "mediator": "李"}
    assert step_changes(S.IN_MEDIATION, AT, TransitionData(), none) == {"mediated_at": AT}
    assert step_changes(S.RESOLVED, AT, TransitionData(), none) == {"resolved_at": AT}
    assert step_changes(S.CLOSED, AT, TransitionData(), none) == {"closed_at": AT}
    assert step_changes(S.ESCALATED, AT, TransitionData(), none) == {"escalated_at": AT}
    assert step_changes(S.REFERRED, AT, TransitionData(referral=Referral.LITIGATION),
                        none) == {"referral": "litigation"}
    assert step_changes(S.RATED, AT, TransitionData(satisfaction=4), none) == {
        "satisfaction": 4}


def test_a_case_mediated_again_after_escalation_keeps_its_first_mediation() -> None:
    earlier = datetime(2026, 11, 1, tzinfo=UTC)
    assert step_changes(S.IN_MEDIATION, AT, TransitionData(),
                        Milestones(mediated_at=earlier)) == {}
