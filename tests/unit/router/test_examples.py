"""Every worked example of DOMAIN.md's default policy (tests/data/routing_examples.yaml)."""

from __future__ import annotations

import pytest

from services.router.domain import JurisdictionTree, RoutingRules, route_case
from services.router.domain.evaluation import LabelledReport, load_labelled
from tests.unit.router.conftest import DATA

EXAMPLES = load_labelled(DATA / "routing_examples.yaml")


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_worked_example_is_routed_as_the_policy_says(
        example: LabelledReport, rules: RoutingRules, tree: JurisdictionTree) -> None:
    decision = route_case(example.report, rules, tree, prior_related=example.prior_related)
    got = {
        "category": decision.category.value,
        "risk": decision.risk.value,
        "tier": decision.tier.value,
        "lead_department": decision.lead_department.value,
        "cooperating": [d.value for d in decision.cooperating_departments],
    }
    assert got == dict(example.expect), decision.explanation.en


def test_the_examples_file_is_a_copy_of_the_shared_one() -> None:
    shared = DATA.parents[2] / "shared/data/routing_examples.yaml"
    if not shared.exists():
        pytest.skip("no ../shared beside the repository (CI clones carry only the copy)")
    assert shared.read_text(encoding="utf-8") == (DATA / "routing_examples.yaml").read_text(
        encoding="utf-8")
