"""The chaos checker's expectations of a case corrected on purpose: routed more than once,
with more history, and still one case."""

from __future__ import annotations

from chaos.check import EXPECTED_HISTORY, OnPurpose, Stage, corrections_of, on_purpose


def test_a_case_routed_once_keeps_the_suites_expectations() -> None:
    assert on_purpose(0, 1, list(EXPECTED_HISTORY)) is None


def test_a_returned_case_expects_one_routed_event_per_round_and_one_webhook_per_step() -> None:
    history = [(1, "reported"), (2, "routed"), (3, "returned"), (4, "routed")]
    expected = on_purpose(1, 2, history)
    assert expected == OnPurpose(rounds=2, steps=4, routed_steps=2)
    assert "awaiting_dispatch" in OnPurpose.STATUSES


def test_its_rounds_are_not_doubles_but_one_more_is() -> None:
    stage = Stage("topic case.routed.v1")
    stage.count("A", 2, wanted=2)
    stage.count("B", 3, wanted=2)
    assert (stage.doubled, stage.lost) == (["B"], [])


def test_a_merged_report_is_a_case_on_purpose_still_one_case() -> None:
    history = [(1, "reported"), (2, "routed"), (3, "merged"), (4, "closed")]
    assert corrections_of(0, history) == 1
    expected = on_purpose(corrections_of(0, history), 1, history)
    assert expected == OnPurpose(rounds=1, steps=4, routed_steps=1)
    assert "merged" in OnPurpose.STATUSES
    assert corrections_of(0, list(EXPECTED_HISTORY)) == 0
