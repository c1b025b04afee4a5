"""The default rules against the hand-labelled reports: ≥95% per field, every red caught.

The held-out sets (tests/data/heldout_reports*.yaml) were written later, each measured
before the router changed in answer to it; docs/routing.md records those first scores,
the honest estimate for reports the router has not seen. Here each set is held to what
it can fairly be held to, and its accuracy is printed (pytest -s to see it).
"""

from __future__ import annotations

import pytest

from contracts.enums import Category, Channel, Risk
from services.router.domain import JurisdictionTree, RoutingRules
from services.router.domain.evaluation import FIELDS, Evaluation, evaluate, load_labelled
from tests.unit.router.conftest import DATA

LABELLED = load_labelled(DATA / "labelled_reports.yaml")


@pytest.fixture(scope="module")
def evaluation(rules: RoutingRules, tree: JurisdictionTree) -> Evaluation:
    return evaluate(LABELLED, rules, tree)


@pytest.mark.parametrize("field", FIELDS)
def test_each_field_is_right_for_at_least_95_percent(evaluation: Evaluation, field: str) -> None:
    wrong = [f"{o.labelled.id}: {o.got(field)} (want {o.wanted(field)})"
             for o in evaluation.outcomes if o.got(field) != o.wanted(field)]
    assert evaluation.accuracy(field) >= 0.95, wrong


def test_every_red_report_is_caught(evaluation: Evaluation) -> None:
    assert [o.labelled.id for o in evaluation.missed_reds()] == []


def test_no_report_is_red_without_a_threat(evaluation: Evaluation) -> None:
    assert [o.labelled.id for o in evaluation.false_reds()] == []


def test_the_set_covers_every_category_channel_and_risk() -> None:
    assert len(LABELLED) >= 150
    assert {item.expect["category"] for item in LABELLED} == {c.value for c in Category}
    assert {item.report.channel for item in LABELLED} == set(Channel)
    assert {item.expect["risk"] for item in LABELLED} == {r.value for r in Risk}


def test_the_held_out_reports_also_pass(evaluation: Evaluation) -> None:
    # Written after the word lists were tuned: a check that they were not tuned to the set.
    held_out = evaluation.part("holdout")
    assert len(held_out.outcomes) >= 40
    for field in FIELDS:
        assert held_out.accuracy(field) >= 0.9, field


# file, the per-field floor, whether every red must be caught and none be wrongly red
HELD_OUT = [
    # Set 1 was measured, then the word lists were improved on it: a tuned set.
    ("heldout_reports.yaml", 0.95, True),
    # Set 2 was measured untouched (88/91/95/87%, 4 of 11 reds missed); only general threat
    # fixes for its missed reds followed. It is held to its reds and a modest floor.
    ("heldout_reports_2.yaml", 0.85, True),
    # Set 3 likewise (90.5/83.8/90.5/87.8%, 5 of 8 reds missed), then general threat fixes.
    ("heldout_reports_3.yaml", 0.85, True),
    # Set 4, written last (91.2/95.6/95.6/89.7%, 2 of 7 reds missed); then only those two.
    ("heldout_reports_4.yaml", 0.85, True),
]


@pytest.mark.parametrize(("name", "floor", "reds"), HELD_OUT, ids=[h[0] for h in HELD_OUT])
def test_held_out_reports(name: str, floor: float, reds: bool, rules: RoutingRules,
                          tree: JurisdictionTree) -> None:
    held_out = evaluate(load_labelled(DATA / name), rules, tree)
    scores = {field: held_out.accuracy(field) for field in FIELDS}
    print(f"\n{name}: {len(held_out.outcomes)} reports, "
          + ", ".join(f"{field} {score:.1%}" for field, score in scores.items()))
    assert not held_out.false_reds(), [o.labelled.id for o in held_out.false_reds()]
    if reds:
        assert not held_out.missed_reds(), [o.labelled.id for o in held_out.missed_reds()]
    for field, score in scores.items():
        wrong = [f"{o.labelled.id}: {o.got(field)} (want {o.wanted(field)})"
                 for o in held_out.outcomes if o.got(field) != o.wanted(field)]
        assert score >= floor, (field, wrong)


@pytest.mark.parametrize("name", [h[0] for h in HELD_OUT])
def test_each_held_out_set_covers_every_category_channel_and_risk(name: str) -> None:
    labelled = load_labelled(DATA / name)
    assert {item.expect["category"] for item in labelled} == {c.value for c in Category}
    assert {item.report.channel for item in labelled} == set(Channel)
    assert {item.expect["risk"] for item in labelled} == {r.value for r in Risk}


def test_held_out_set_5_with_both_readers(rules: RoutingRules, tree: JurisdictionTree) -> None:
    """Set 5 (issue 19) was measured once (31 of 59 reds), then the rules were tuned on its
    misses in general families: held to what both readers reach now, so nothing slips back.
    docs/routing.md lists the two reds still missed and the two false reds."""
    held_out = evaluate(load_labelled(DATA / "heldout_reports_5.yaml"), rules, tree)
    total = len(held_out.outcomes)
    reds = held_out.reds()
    assert total >= 200 and reds >= total // 5
    missed = {o.labelled.id for o in held_out.missed_reds()}
    false = {o.labelled.id for o in held_out.false_reds()}
    assert len(missed) <= 2, missed
    assert len(false) / (total - reds) < 0.03, false
    assert len(held_out.flagged()) / total < 0.20
    for field in FIELDS:
        assert held_out.accuracy(field) >= 0.92, field


def test_held_out_set_5_covers_every_category_channel_and_risk() -> None:
    labelled = load_labelled(DATA / "heldout_reports_5.yaml")
    assert {item.expect["category"] for item in labelled} == {c.value for c in Category}
    assert {item.report.channel for item in labelled} == set(Channel)
    assert {item.expect["risk"] for item in labelled} == {r.value for r in Risk}
