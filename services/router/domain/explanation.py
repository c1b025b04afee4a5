"""One line in Chinese and one in English saying why a case went where it went."""

from __future__ import annotations

from contracts.enums import Department, Risk
from contracts.events import Explanation, JurisdictionRef
from contracts.vocabulary import (
    CATEGORY_ZH,
    DEPARTMENT_ZH,
    RISK_ZH,
    TIER_ZH,
)
from services.router.domain.category import CategoryVerdict
from services.router.domain.departments import Assignment
from services.router.domain.risk import RiskVerdict
from services.router.domain.tiers import TierVerdict


def explain(category: CategoryVerdict, risk: RiskVerdict, tier: TierVerdict,
            assignment: Assignment, jurisdiction: JurisdictionRef | None,
            routing_round: int, second: tuple[str, str] | None = None,
            by_coordinates: bool = False) -> Explanation:
    """`second` is what the learned reader said (readers.second_reading), in zh and en;
    `by_coordinates`: the place was found from the report's coordinates (places.py)."""
    zh = _zh(category, risk, tier, assignment, jurisdiction, routing_round, by_coordinates)
    en = _en(category, risk, tier, assignment, jurisdiction, routing_round, by_coordinates)
    if second is not None:
        zh = zh.removesuffix("。") + "；" + second[0] + "。"
        en = en.removesuffix(".") + "; " + second[1] + "."
    return Explanation(zh=zh, en=en)


def _zh(category: CategoryVerdict, risk: RiskVerdict, tier: TierVerdict,
        assignment: Assignment, jurisdiction: JurisdictionRef | None,
        routing_round: int, by_coordinates: bool = False) -> str:
    parts: list[str] = []
    if tier.escalated_from is not None:
        parts.append(f"第{routing_round}轮分派，调解未成由{TIER_ZH[tier.escalated_from]}"
                     f"升级，至少{TIER_ZH[tier.escalated_from.above()]}办理")
    if category.source is not None:
        basis = f"渠道分类“{category.source}”"
    elif category.rule == "category.reader":
        basis = "文本模型，规则未见类别词"
    elif category.terms:
        basis = "关键词“" + "、".join(category.terms[:4]) + "”"
    else:
        basis = "未见明确类别词"
    parts.append(f"{CATEGORY_ZH[category.category]}（依据{basis}）")
    risk_part = f"风险{RISK_ZH[risk.risk]}"
    if risk.risk != Risk.BLUE:
        risk_part += "（" + "、".join(rule.zh for rule in risk.reasons) + "）"
    parts.append(risk_part)
    tier_part = f"{TIER_ZH[tier.tier]}办理（基础{TIER_ZH[tier.base]}"
    if tier.raised_by:
        tier_part += "；" + "、".join(rule.zh for rule in tier.raised_by)
    parts.append(tier_part + "）")
    if jurisdiction is not None:
        parts.append(f"属地{jurisdiction.name}" + ("（据坐标定位）" if by_coordinates else ""))
    parts.append(f"牵头{DEPARTMENT_ZH[assignment.lead]}")
    if assignment.cooperating:
        parts.append("协同" + "、".join(DEPARTMENT_ZH[d] for d in assignment.cooperating))
    return "；".join(parts) + "。"


def _en(category: CategoryVerdict, risk: RiskVerdict, tier: TierVerdict,
        assignment: Assignment, jurisdiction: JurisdictionRef | None,
        routing_round: int, by_coordinates: bool = False) -> str:
    parts: list[str] = []
    if tier.escalated_from is not None:
        parts.append(f"round {routing_round}: escalated after mediation failed at "
                     f"{tier.escalated_from.value} tier, so at least "
                     f"{tier.escalated_from.above().value}")
    if category.source is not None:
        basis = f"channel classification '{category.source}'"
    elif category.rule == "category.reader":
        basis = "the text model, no category terms"
    elif category.terms:
        basis = "terms " + ", ".join(category.terms[:4])
    else:
        basis = "no category terms"
    parts.append(f"{category.category.value} (from {basis})")
    risk_part = f"risk {risk.risk.value}"
    if risk.risk != Risk.BLUE:
        risk_part += " (" + ", ".join(rule.en for rule in risk.reasons) + ")"
    parts.append(risk_part)
    tier_part = f"{tier.tier.value} tier (base {tier.base.value}"
    if tier.raised_by:
        tier_part += "; raised: " + ", ".join(rule.en for rule in tier.raised_by)
    parts.append(tier_part + ")")
    if jurisdiction is not None:
        parts.append(f"at {jurisdiction.name} {jurisdiction.code}"
                     + (" (placed by coordinates)" if by_coordinates else ""))
    parts.append(f"lead {assignment.lead.value}")
    if assignment.cooperating:
        parts.append("cooperating " + ", ".join(_codes(assignment.cooperating)))
    return "; ".join(parts) + "."


def _codes(departments: list[Department]) -> list[str]:
    return [department.value for department in departments]
