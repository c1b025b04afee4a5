"""Who leads a case and who cooperates, from the tier, the category and the rules."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.enums import Department, Tier
from services.router.domain.facts import CaseFacts
from services.router.domain.rules import CATEGORY_DEPARTMENT, RoutingRules


@dataclass(frozen=True)
class Assignment:
    lead: Department
    cooperating: list[Department]
    fired: list[str]


def assign_departments(facts: CaseFacts, tier: Tier, rules: RoutingRules) -> Assignment:
    policy = rules.departments
    category_department = policy.by_category[facts.category]
    if tier == Tier.VILLAGE:
        lead, fired = policy.village_tier, ["lead.village_tier"]
    else:
        lead, fired = category_department, [f"lead.by_category.{facts.category.value}"]
    facts = facts.with_lead(lead)
    cooperating: list[Department] = []
    for rule, test in rules.cooperation:
        if not test(facts):
            continue
        department = (category_department if rule.department == CATEGORY_DEPARTMENT
                      else Department(rule.department))
        if department == lead or department in cooperating:
            continue
        cooperating.append(department)
        fired.append(rule.id)
    return Assignment(lead, cooperating, fired)
