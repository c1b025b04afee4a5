"""Time limits: acceptance within hours ("事不过夜"), resolution within the tier's days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.enums import Channel, Risk, Tier
from contracts.events import CaseReported, Sla
from services.router.domain.rules import RoutingRules


@dataclass(frozen=True)
class TimeLimits:
    sla: Sla
    fired: list[str]


def time_limits(report: CaseReported, risk: Risk, tier: Tier, rules: RoutingRules,
                start: datetime) -> TimeLimits:
    """Limits counted from `start` (receipt, or the escalation for a case routed again)."""
    policy = rules.sla
    if risk in policy.accept_hours_by_risk:
        accept_hours = policy.accept_hours_by_risk[risk]
        fired = [f"sla.accept.{risk.value}"]
    else:
        accept_hours = policy.accept_hours
        fired = ["sla.accept.standard"]
    if report.channel == Channel.COURT:
        # The court sets the mediation deadline (诉前调解期限); without one, the default term.
        if report.deadline is not None:
            resolve_by = report.deadline
            fired.append("sla.resolve.court_deadline")
        else:
            resolve_by = start + timedelta(days=policy.court_referral_days)
            fired.append("sla.resolve.court_default")
    else:
        resolve_by = start + timedelta(days=policy.resolve_days[tier])
        fired.append(f"sla.resolve.{tier.value}")
    return TimeLimits(Sla(accept_by=start + timedelta(hours=accept_hours),
                          resolve_by=resolve_by), fired)
