"""Two readers, one decision: the rules and the learned model (reader.py), and doubt as a state.

- Red when either reader says red: the rules by a threat rule, the model by a red
  probability at or above its threshold. A missed threat costs far more (24 hours to
  acceptance instead of 2, no police station) than a red that a person lowers.
- The category is the rules'; the model's category only decides where the rules found no
  category word at all and the model is sure.
- Review (待研判) when they disagree on red (the model says red and the rules do not, or
  the rules say red and the model is clearly against it), when the model is unsure of red
  and the rules did not say red, when both
  name a category with some confidence and differ (the channel's own classification is
  not second-guessed), or when neither is sure of any category. The higher risk stands
  meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.enums import Risk
from contracts.events import Review
from contracts.vocabulary import CATEGORY_ZH
from services.router.domain.category import CategoryVerdict
from services.router.domain.reader import ReaderVerdict
from services.router.domain.risk import RiskVerdict
from services.router.domain.rules import RiskRule, When

RED_BY_READER = "risk.red.reader"
CATEGORY_BY_READER = "category.reader"


@dataclass
class Second:
    """What the model's reading adds to a decision: a risk, a category, doubt, words."""

    review: Review = field(default_factory=Review)
    fired: list[str] = field(default_factory=list)
    zh: str = ""
    en: str = ""


def reader_category(category: CategoryVerdict, verdict: ReaderVerdict) -> CategoryVerdict:
    """The rules' category, unless they found no category word and the model is sure of one."""
    if (category.rule != "category.none" or not verdict.sure_of_category
            or verdict.category == category.category):
        return category
    return CategoryVerdict(verdict.category, round(verdict.category_probability, 2), [],
                           CATEGORY_BY_READER, None)


def reader_risk(risk: RiskVerdict, verdict: ReaderVerdict) -> RiskVerdict:
    """Red if the model says red and the rules did not."""
    if risk.risk == Risk.RED or not verdict.says_red:
        return risk
    p = verdict.red_probability
    rule = RiskRule(id=RED_BY_READER, when=When(),
                    zh=f"文本模型判断可能扬言暴力或极端行为（概率{p:.2f}）",
                    en=f"the text model reads a threat or an extreme act (probability {p:.2f})")
    return RiskVerdict(Risk.RED, [f"reader:red {p:.2f}", *risk.signals],
                       [*risk.fired, RED_BY_READER], [rule])


def second_reading(rules_category: CategoryVerdict, category: CategoryVerdict,
                   rules_risk: RiskVerdict, verdict: ReaderVerdict) -> Second:
    """Compare the readers; `category` is the one decided (reader_category's answer)."""
    second = Second()
    codes: list[str] = []
    reasons: list[str] = []
    p = verdict.red_probability
    rules_red = rules_risk.risk == Risk.RED
    if verdict.says_red and not rules_red:
        codes.append("review.risk_disagreement")
        reasons.append(f"文本模型判为红色风险（概率{p:.2f}），规则未见扬言或极端行为词语；"
                       "暂按红色处置")
    elif rules_red and p < verdict.thresholds.red_clear:
        codes.append("review.risk_disagreement")
        reasons.append(f"规则判为红色风险，文本模型未见风险（概率{p:.2f}）；暂按红色处置")
    elif verdict.unsure_of_red and not rules_red:
        codes.append("review.red_doubt")
        reasons.append(f"文本模型疑似红色风险（概率{p:.2f}），请研判是否扬言暴力或轻生")
    model_category = verdict.category
    if (rules_category.rule == "category.text" and verdict.sure_of_category
            and model_category != rules_category.category):
        codes.append("review.category_disagreement")
        reasons.append(f"规则判为{CATEGORY_ZH[rules_category.category]}，文本模型判为"
                       f"{CATEGORY_ZH[model_category]}（概率{verdict.category_probability:.2f}）")
    elif (category.rule == "category.none"
          and verdict.category_probability < verdict.thresholds.category_doubt):
        codes.append("review.category_unclear")
        reasons.append("规则未见类别词，文本模型亦无把握，类别待定")
    second.review = Review(flagged=bool(codes), reasons=reasons, codes=codes)
    second.fired = [*codes]
    if not codes:
        second.fired.append("review.none")
    category_name = CATEGORY_ZH[model_category]
    second.zh = (f"文本模型：红色风险概率{p:.2f}，类别{category_name}"
                 f"（{verdict.category_probability:.2f}）")
    second.en = (f"text model: red probability {p:.2f}, category {model_category.value} "
                 f"({verdict.category_probability:.2f})")
    if codes:
        second.zh += "；待研判：" + "；".join(reasons)
        second.en += "; flagged for review: " + ", ".join(c.removeprefix("review.")
                                                          for c in codes)
    return second

