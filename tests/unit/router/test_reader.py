"""The second reader: the shipped model loads and reads, numpy inference matches scikit-learn,
and the two readers combine as docs/routing.md says (red when either says red; doubt flagged)."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from contracts.enums import Category, Department, Risk
from services.router.domain import JurisdictionTree, RoutingRules, route_case
from services.router.domain.category import CategoryVerdict
from services.router.domain.reader import (
    DEFAULT_MODEL,
    ReaderVerdict,
    TextReader,
    Thresholds,
    default_reader,
    load_reader,
)
from services.router.domain.readers import (
    CATEGORY_BY_READER,
    RED_BY_READER,
    reader_category,
    reader_risk,
    second_reading,
)
from services.router.domain.risk import RiskVerdict
from services.router.domain.text import normalise

from .conftest import ROOT, report

THRESHOLDS = Thresholds(red=0.5, red_doubt=0.2, red_clear=0.1, category=0.4,
                        category_doubt=0.3)
CATEGORIES = list(Category)


def _shipped() -> TextReader:
    reader = default_reader()
    assert reader is not None, "services/router/data/reader.npz is not shipped"
    return reader


# --- the shipped model ------------------------------------------------------------------------

def test_the_shipped_model_loads_small_and_sane() -> None:
    reader = _shipped()
    assert DEFAULT_MODEL.stat().st_size < 3_000_000
    assert set(reader.categories) == set(Category)
    assert len(reader.index) > 1000
    t = reader.thresholds
    assert 0 < t.red_clear <= t.red_doubt < t.red < 1
    assert reader.cross_validated["reports"] >= 700  # figures from its training travel with it


@pytest.mark.parametrize(("text", "category"), [
    ("邻居扬言要拿刀砍死他全家，还说要同归于尽", None),
    ("他说活着没意思了，想一了百了，遗书都写好了", None),
])
def test_clear_threats_read_red(text: str, category: Category | None) -> None:
    verdict = _shipped().read(normalise(text))
    assert verdict.says_red, verdict


@pytest.mark.parametrize(("text", "category"), [
    ("快递公司拖欠我两个月工资共计9600元，老板一直推脱不给", Category.LABOR),
    ("楼上邻居每天晚上装修噪音太大，沟通多次无果", Category.NEIGHBOR),
    ("小区物业公司乱收物业费，电梯坏了也不修", Category.PROPERTY_MANAGEMENT),
])
def test_ordinary_disputes_read_their_category_and_not_red(text: str,
                                                           category: Category) -> None:
    verdict = _shipped().read(normalise(text))
    assert verdict.category == category
    assert verdict.red_probability < THRESHOLDS.red_doubt


def test_a_model_of_another_format_is_refused(tmp_path: Path) -> None:
    with np.load(DEFAULT_MODEL, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(str(arrays["meta"]))
    meta["format"] = 99
    arrays["meta"] = np.array(json.dumps(meta))
    path = tmp_path / "reader.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="format 99"):
        load_reader(path)


def _train_reader_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_reader", ROOT / "scripts/train_reader.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_reader"] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def test_numpy_inference_matches_scikit_learn(tmp_path: Path) -> None:
    """The model file, read by numpy alone, gives scikit-learn's own probabilities."""
    pytest.importorskip("sklearn")
    train = _train_reader_script()
    texts = ["扬言要砍死他", "拖欠工资不给", "邻居噪音扰民", "要跳楼自杀", "物业费乱收",
             "工资三个月没发", "楼上漏水不修", "说要同归于尽", "装修噪音太大", "老板欠薪跑路"]
    red = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0, 0])
    category = ["neighbor", "labor", "neighbor", "marriage_family", "property_management",
                "labor", "neighbor", "neighbor", "neighbor", "labor"]
    examples = train.Examples(texts, red, category)
    thresholds = {"red": 0.5, "red_doubt": 0.2, "red_clear": 0.1, "category": 0.4,
                  "category_doubt": 0.3}
    out = tmp_path / "reader.npz"
    train.write(examples, 4.0, thresholds, {}, out)
    reader = load_reader(out)
    vectorizer = train._vectorizer()
    x = vectorizer.fit_transform(texts)
    red_model, category_model = train._models("logreg", 4.0)
    red_model.fit(x, red)
    category_model.fit(x, category)
    for text in ["他扬言要砍人", "欠薪三个月", "楼上噪音", "完全无关的一句话"]:
        verdict = reader.read(text)
        features = vectorizer.transform([text])
        expected_red = red_model.predict_proba(features)[0, 1]
        probabilities = category_model.predict_proba(features)[0]
        assert verdict.red_probability == pytest.approx(expected_red, abs=1e-4)
        assert verdict.category.value == category_model.classes_[probabilities.argmax()]
        assert verdict.category_probability == pytest.approx(probabilities.max(), abs=1e-4)


# --- combining the readers --------------------------------------------------------------------

def _verdict(red: float, category: Category = Category.NEIGHBOR,
             probability: float = 0.9) -> ReaderVerdict:
    return ReaderVerdict(red, category, probability, THRESHOLDS)


def _rules_category(category: Category = Category.NEIGHBOR, rule: str = "category.text"
                    ) -> CategoryVerdict:
    return CategoryVerdict(category, 0.8 if rule != "category.none" else 0.5,
                           ["邻居"] if rule == "category.text" else [], rule, None)


def _risk(risk: Risk) -> RiskVerdict:
    return RiskVerdict(risk, [], [f"risk.{risk.value}.x"] if risk != Risk.BLUE else [], [])


def test_the_model_alone_makes_a_red_and_says_so() -> None:
    combined = reader_risk(_risk(Risk.YELLOW), _verdict(0.8))
    assert combined.risk == Risk.RED
    assert RED_BY_READER in combined.fired
    assert combined.signals[0] == "reader:red 0.80"
    assert "0.80" in combined.reasons[0].zh
    second = second_reading(_rules_category(), _rules_category(), _risk(Risk.YELLOW),
                            _verdict(0.8))
    assert second.review.flagged
    assert second.review.codes == ["review.risk_disagreement"]
    assert "暂按红色处置" in second.review.reasons[0]


def test_a_red_of_the_rules_stands_whatever_the_model_says() -> None:
    assert reader_risk(_risk(Risk.RED), _verdict(0.01)).risk == Risk.RED
    clearly_against = second_reading(_rules_category(), _rules_category(), _risk(Risk.RED),
                                     _verdict(0.05))
    assert clearly_against.review.codes == ["review.risk_disagreement"]
    unsure = second_reading(_rules_category(), _rules_category(), _risk(Risk.RED),
                            _verdict(0.15))
    assert not unsure.review.flagged  # between clear and red: no dispute, the red stands


def test_no_red_from_an_unsure_model_but_a_flag() -> None:
    assert reader_risk(_risk(Risk.BLUE), _verdict(0.3)).risk == Risk.BLUE
    second = second_reading(_rules_category(), _rules_category(), _risk(Risk.BLUE),
                            _verdict(0.3))
    assert second.review.codes == ["review.red_doubt"]


def test_agreement_is_no_flag() -> None:
    second = second_reading(_rules_category(), _rules_category(), _risk(Risk.BLUE),
                            _verdict(0.02))
    assert not second.review.flagged and second.review.reasons == []
    assert second.fired == ["review.none"]
    assert "文本模型" in second.zh and "text model" in second.en


def test_a_sure_model_disputes_the_rules_category_but_not_the_channels() -> None:
    labor = _verdict(0.02, Category.LABOR, 0.9)
    disputed = second_reading(_rules_category(), _rules_category(), _risk(Risk.BLUE), labor)
    assert disputed.review.codes == ["review.category_disagreement"]
    channel = _rules_category(rule="category.channel")
    assert not second_reading(channel, channel, _risk(Risk.BLUE), labor).review.flagged
    unsure = _verdict(0.02, Category.LABOR, 0.35)
    assert not second_reading(_rules_category(), _rules_category(), _risk(Risk.BLUE),
                              unsure).review.flagged


def test_where_the_rules_find_no_category_a_sure_model_decides_and_an_unsure_one_flags() -> None:
    none = _rules_category(Category.OTHER, "category.none")
    decided = reader_category(none, _verdict(0.02, Category.LABOR, 0.9))
    assert (decided.category, decided.rule) == (Category.LABOR, CATEGORY_BY_READER)
    assert reader_category(none, _verdict(0.02, Category.LABOR, 0.2)) is none
    assert reader_category(_rules_category(), _verdict(0.02, Category.LABOR, 0.9)).category \
        == Category.NEIGHBOR
    unclear = second_reading(none, none, _risk(Risk.BLUE), _verdict(0.02, Category.LABOR, 0.2))
    assert unclear.review.codes == ["review.category_unclear"]


# --- in the routing decision ------------------------------------------------------------------

def _one_word_reader(word: str, red_weight: float) -> TextReader:
    """A model that knows one word: it says red when the word is there and nothing else."""
    weights = np.zeros((1, 1 + len(CATEGORIES)))
    weights[0, 0] = red_weight
    bias = np.zeros(1 + len(CATEGORIES))
    bias[0] = -5.0
    bias[1 + CATEGORIES.index(Category.NEIGHBOR)] = 1.0
    return TextReader([word], np.ones(1), weights, bias, CATEGORIES, THRESHOLDS, 3, "test")


def test_a_red_from_the_model_takes_the_red_path(rules: RoutingRules,
                                                 tree: JurisdictionTree) -> None:
    case = report("楼上邻居半夜敲暖气管，还说你再上来一次试试，看我怎么对付你")
    reader = _one_word_reader("对付你", 10.0)
    plain = route_case(case, rules, tree, use_reader=False)
    assert plain.risk != Risk.RED and not plain.review.flagged
    decision = route_case(case, rules, tree, reader=reader)
    assert decision.risk == Risk.RED
    assert RED_BY_READER in decision.rules_fired
    assert "review.risk_disagreement" in decision.rules_fired
    assert decision.review.flagged and decision.review.codes == ["review.risk_disagreement"]
    assert Department.POLICE_STATION in decision.cooperating_departments
    assert decision.sla.accept_by - case.received_at == timedelta(hours=2)
    assert "文本模型" in decision.explanation.zh and "text model" in decision.explanation.en


def test_without_a_flag_the_decision_says_what_the_model_read(rules: RoutingRules,
                                                              tree: JurisdictionTree) -> None:
    case = report("楼上邻居装修噪音太大，沟通多次无果")
    decision = route_case(case, rules, tree, reader=_one_word_reader("扬言", 10.0))
    assert decision.risk == Risk.BLUE
    assert not decision.review.flagged
    assert "review.none" in decision.rules_fired
    assert "红色风险概率0.01" in decision.explanation.zh


def test_the_shipped_reader_is_used_by_default(rules: RoutingRules,
                                               tree: JurisdictionTree) -> None:
    decision = route_case(report("楼上邻居装修噪音太大，沟通多次无果"), rules, tree)
    assert "文本模型" in decision.explanation.zh
    assert "文本模型" not in route_case(report("楼上邻居装修噪音太大"), rules, tree,
                                     use_reader=False).explanation.zh


def test_training_reads_the_corrections_export(tmp_path: Path) -> None:
    """`--corrections FILE`: a person's final decision is the label, beside the labelled sets."""
    pytest.importorskip("sklearn")
    train = _train_reader_script()
    corrections = tmp_path / "corrections.json"
    corrections.write_text(json.dumps({"items": [
        {"text": "他說再來鬧就讓你橫著出去", "final": {"category": "neighbor", "risk": "red",
                                                   "lead_department": "judicial_office"}},
        {"text": "物业费乱收", "final": {"category": "property_management", "risk": "blue"}},
    ]}, ensure_ascii=False), encoding="utf-8")
    base = train.gather(None)
    examples = train.gather(corrections)
    assert len(examples.texts) == len(base.texts) + 2
    assert examples.texts[-2].startswith("他说再来闹就让你")  # read as the router reads it
    assert list(examples.red[-2:]) == [1, 0]
    assert examples.category[-2:] == ["neighbor", "property_management"]
    assert "heldout_reports_5.yaml" not in train.TRAINING_SETS  # the test is never trained on
