"""The lifecycle state machine of DOMAIN.md."""

from __future__ import annotations

import itertools

import pytest

from contracts.enums import Status
from services.mediation.domain import OPEN_STATUSES, TRANSITIONS, can_transition

HAPPY_PATH = [Status.REPORTED, Status.ROUTED, Status.ACCEPTED, Status.IN_MEDIATION,
              Status.RESOLVED, Status.CLOSED, Status.VISITED, Status.RATED, Status.ARCHIVED]


def test_every_status_has_a_row() -> None:
    assert set(TRANSITIONS) == set(Status)


@pytest.mark.parametrize("current,target", list(itertools.pairwise(HAPPY_PATH)))
def test_the_closed_loop_is_legal(current: Status, target: Status) -> None:
    assert can_transition(current, target)


# `referred` and `returned_to_source` close the case by themselves, so are not withdrawable.
@pytest.mark.parametrize("current", sorted(OPEN_STATUSES - {
    Status.WITHDRAWN, Status.REFERRED, Status.RETURNED_TO_SOURCE}))
def test_withdrawal_is_allowed_before_closure(current: Status) -> None:
    assert can_transition(current, Status.WITHDRAWN)


@pytest.mark.parametrize("current", [Status.CLOSED, Status.VISITED, Status.RATED,
                                     Status.ARCHIVED])
def test_withdrawal_is_refused_after_closure(current: Status) -> None:
    assert not can_transition(current, Status.WITHDRAWN)


def test_failed_case_escalates_or_is_referred_never_resolves() -> None:
    assert can_transition(Status.FAILED, Status.ESCALATED)
    assert can_transition(Status.FAILED, Status.REFERRED)
    assert not can_transition(Status.FAILED, Status.RESOLVED)


def test_archive_is_final() -> None:
    assert TRANSITIONS[Status.ARCHIVED] == frozenset()
