"""The rules file: loads, and refuses a bad file naming every problem by its path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.router.domain import RoutingRules, RulesError, load_rules, parse_rules
from tests.unit.router.conftest import RULES_PATH


@pytest.fixture
def data() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RULES_PATH.read_text(encoding="utf-8"))
    return copy.deepcopy(loaded)


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_rules(data, source="test.yaml")
    return caught.value.problems


def test_the_default_rules_load_with_a_version(rules: RoutingRules) -> None:
    assert rules.version == "2026.12.1"


def test_an_unknown_department_is_named_with_its_path(data: dict[str, Any]) -> None:
    data["departments"]["by_category"]["labor"] = "hr"
    assert problems_of(data) == ["departments.by_category.labor: 'hr' is not a department"]


def test_an_unknown_category_key_is_named(data: dict[str, Any]) -> None:
    data["categories"]["labour"] = data["categories"].pop("labor")
    assert "categories: 'labour' is not a category" in problems_of(data)


def test_a_misspelt_field_is_named(data: dict[str, Any]) -> None:
    data["tiers"]["raise"][0]["whne"] = data["tiers"]["raise"][0].pop("when")
    assert problems_of(data) == ["tiers.raise[0].when: is required",
                                 "tiers.raise[0].whne: is not a known field"]


def test_an_unknown_signal_is_named(data: dict[str, Any]) -> None:
    data["risk"]["red"][0]["when"]["signal"] = ["threats"]
    [problem] = problems_of(data)
    assert problem.startswith("risk.red[0].when.signal: 'threats' is not a signal (known: ")


def test_a_bad_regular_expression_is_named(data: dict[str, Any]) -> None:
    data["signals"]["threat"]["patterns"][0] = "打断(.{0,4}腿"
    [problem] = problems_of(data)
    assert problem.startswith("signals.threat.patterns[0]: '打断(.{0,4}腿' is not a valid "
                              "regular expression")


def test_a_bad_intent_act_is_named(data: dict[str, Any]) -> None:
    data["signals"]["threat"]["intent"]["acts"][0] = "砍(死"
    [problem] = problems_of(data)
    assert problem.startswith("signals.threat.intent.acts[0]: '砍(死' is not a valid regular "
                              "expression")


def test_an_unknown_aside_signal_is_named(data: dict[str, Any]) -> None:
    data["text"]["aside_signals"] = ["threats"]
    [problem] = problems_of(data)
    assert problem.startswith("text.aside_signals[0]: 'threats' is not a signal (known: ")


def test_an_intent_needs_markers_and_acts(data: dict[str, Any]) -> None:
    data["signals"]["threat"]["intent"]["markers"] = []
    [problem] = problems_of(data)
    assert problem.startswith("signals.threat.intent.markers: ")


def test_misspellings_are_read_as_the_word_meant(rules: RoutingRules) -> None:
    assert rules.respell("两个儿子都不愿瞻养她,补尝款以经到了") == "两个儿子都不愿赡养她,补偿款已经到了"


def test_a_raise_needs_exactly_one_of_to_and_steps(data: dict[str, Any]) -> None:
    data["tiers"]["raise"][1]["steps"] = 1
    assert problems_of(data) == [
        "tiers.raise[1]: give exactly one of 'to' (a tier) or 'steps' (levels up)"]


def test_every_category_needs_a_department(data: dict[str, Any]) -> None:
    del data["departments"]["by_category"]["tourism"]
    assert problems_of(data) == ["departments.by_category: no department for 'tourism'"]


def test_rule_ids_are_unique(data: dict[str, Any]) -> None:
    data["risk"]["orange"][1]["id"] = "risk.orange.collective"
    [problem] = problems_of(data)
    assert problem == ("risk.orange[1].id: 'risk.orange.collective' is already used at "
                       "risk.orange[0]")


def test_all_problems_are_listed_at_once(data: dict[str, Any]) -> None:
    data["version"] = ""
    data["sla"]["accept_hours"] = 0
    data["tiers"]["base"]["by_category"]["neighbor"] = "hamlet"
    data["channel_categories"]["court"]["民间借贷纠纷"] = "loans"
    problems = problems_of(data)
    assert len(problems) == 4
    assert "tiers.base.by_category.neighbor: 'hamlet' is not a tier" in problems
    assert "channel_categories.court.民间借贷纠纷: 'loans' is not a category" in problems
    assert any(p.startswith("version: ") for p in problems)
    assert any(p.startswith("sla.accept_hours: ") for p in problems)


def test_the_error_message_names_the_file_and_each_problem(data: dict[str, Any]) -> None:
    data["departments"]["village_tier"] = "village"
    with pytest.raises(RulesError) as caught:
        parse_rules(data, source="county.yaml")
    assert str(caught.value) == ("county.yaml: 1 problem(s) in the routing rules:\n"
                                 "  - departments.village_tier: 'village' is not a department")


def test_a_missing_file_and_bad_yaml_are_rules_errors(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read the file"):
        load_rules(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: [1\n", encoding="utf-8")
    with pytest.raises(RulesError, match="not valid YAML"):
        load_rules(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n", encoding="utf-8")
    with pytest.raises(RulesError, match="mapping"):
        load_rules(listed)


def test_terms_in_traditional_characters_are_normalised(data: dict[str, Any]) -> None:
    data["categories"]["neighbor"]["strong"].append("鄰里糾紛")
    rules = parse_rules(data)
    assert "category:neighbor" in rules.lexicon.find("邻里纠纷")


def test_the_rules_round_trip_through_their_dump(rules: RoutingRules) -> None:
    again = parse_rules(rules.to_dict())
    assert again.document == rules.document
