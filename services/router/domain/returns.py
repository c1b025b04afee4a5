"""A case returned by its lead department (退回): routed again at the same tier, never to a
department that has returned it; after two returns, or with no department left, a person
decides (the dispatch queue). Pure: the handler passes the fresh decision and the returns."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.enums import Department, Tier
from contracts.events import Explanation, RoutingDecision
from services.router.domain.rules import RoutingRules

# The second return sends the case to a dispatcher rather than to a third department.
MAX_RETURNS = 2


@dataclass(frozen=True)
class Returned:
    """The return being handled, and what the case's earlier returns left."""

    department: Department | None        # the lead department that returned it now
    reason: str
    returns: int                         # returns so far, this one included
    returned_by: tuple[Department, ...]  # every department that has returned it
    suggested: Department | None = None  # where the returning department says it belongs
    tier: Tier | None = None

    @property
    def note(self) -> str:
        who = self.department.value if self.department else "the lead department"
        return f"returned by {who}: {self.reason}"


def candidates(decision: RoutingDecision, returned: Returned,
               rules: RoutingRules) -> list[Department]:
    """Who may lead now, best first: the suggestion, the rules' choice, its cooperating
    departments, the category's department, the village tier's; none that returned it."""
    policy = rules.departments
    order = [returned.suggested, decision.lead_department, *decision.cooperating_departments,
             policy.by_category.get(decision.category), policy.village_tier]
    excluded = set(returned.returned_by)
    return [d for d in dict.fromkeys(order) if d is not None and d not in excluded]


def reroute(decision: RoutingDecision, returned: Returned, rules: RoutingRules,
            routing_round: int) -> RoutingDecision | None:
    """The decision after a return, or None when a person must decide (returned twice, or
    no department left)."""
    if returned.returns >= MAX_RETURNS:
        return None
    left = candidates(decision, returned, rules)
    if not left:
        return None
    lead = left[0]
    source = ("suggested" if lead == returned.suggested else
              "rules" if lead == decision.lead_department else "next")
    excluded = set(returned.returned_by)
    cooperating = [d for d in decision.cooperating_departments
                   if d != lead and d not in excluded]
    others = ", ".join(d.value for d in returned.returned_by)
    en = (f"round {routing_round}: {returned.note}; routed again at {decision.tier.value} "
          f"tier, not to {others}; lead {lead.value}")
    zh = (f"第{routing_round}轮分派：{returned.department.value if returned.department else ''}"
          f"退回（{returned.reason}），同层级重新分派，不再交{others}；牵头{lead.value}")
    if cooperating:
        en += "; cooperating " + ", ".join(d.value for d in cooperating)
        zh += "；协同" + "、".join(d.value for d in cooperating)
    return decision.model_copy(update={
        "lead_department": lead, "cooperating_departments": cooperating,
        "rules_fired": [*decision.rules_fired, returned.note, f"lead.after_return.{source}"],
        "explanation": Explanation(zh=zh + "。", en=en + ".")})


def for_the_queue(decision: RoutingDecision, returned: Returned,
                  routing_round: int) -> RoutingDecision:
    """The decision kept for reference while the case waits for a dispatcher."""
    twice = returned.returns >= MAX_RETURNS
    why = "returned twice" if twice else "no department left that has not returned it"
    why_zh = "两次退回" if twice else "无其他部门可派"
    return decision.model_copy(update={
        "rules_fired": [*decision.rules_fired, returned.note, "dispatch.queue"],
        "explanation": Explanation(
            zh=f"第{routing_round}轮：{returned.note}；{why_zh}，转人工分派。",
            en=f"round {routing_round}: {returned.note}; {why}: to the dispatch queue for a "
               "person to decide.")})
