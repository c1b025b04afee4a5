"""Time limits: acceptance within hours ("事不过夜"), resolution within the tier's days; a
12345 order's own deadline and urgency bind them where they are earlier (DOMAIN.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.enums import Channel, LimitSource, Risk, Tier
from contracts.events import CaseReported, Sla
from services.router.domain.rules import RoutingRules, SlaPolicy


@dataclass(frozen=True)
class TimeLimits:
    sla: Sla
    fired: list[str]


@dataclass(frozen=True)
class HotlineLimits:
    """What a 12345 order asks for: acceptance by, resolution by (None: nothing)."""

    accept_by: datetime | None
    resolve_by: datetime | None


def hotline_limits(report: CaseReported, policy: SlaPolicy, first_round: bool
                   ) -> HotlineLimits:
    """The 12345 order's own limits: its urgency's lengths from the order's receipt, and its
    deadline, the earlier of the two. The urgency's acceptance limit binds the first routing
    only (签收 happens once; a case routed again gets the policy's, from then)."""
    if report.channel != Channel.HOTLINE_12345:
        return HotlineLimits(None, None)
    asked = policy.hotline_urgency.get(report.urgency) if report.urgency else None
    accept_by = (report.received_at + timedelta(hours=asked.accept_hours)
                 if first_round and asked and asked.accept_hours else None)
    candidates = [report.deadline] if report.deadline else []
    if asked and asked.resolve_days:
        candidates.append(report.received_at + timedelta(days=asked.resolve_days))
    return HotlineLimits(accept_by, min(candidates, default=None))


def earlier(policy_limit: datetime, hotline_limit: datetime | None
            ) -> tuple[datetime, LimitSource]:
    """The earlier of the policy's and the hotline's limit, and whose it is (a tie is the
    policy's: the hotline asked for nothing stricter)."""
    if hotline_limit is not None and hotline_limit < policy_limit:
        return hotline_limit, LimitSource.HOTLINE
    return policy_limit, LimitSource.POLICY


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
    hotline = hotline_limits(report, policy, first_round=start == report.received_at)
    accept_by, accept_source = earlier(start + timedelta(hours=accept_hours),
                                       hotline.accept_by)
    resolve_by, resolve_source = earlier(resolve_by, hotline.resolve_by)
    if accept_source is LimitSource.HOTLINE:
        fired.append(f"sla.accept.hotline_{report.urgency.value if report.urgency else ''}")
    if resolve_source is LimitSource.HOTLINE:
        fired.append("sla.resolve.hotline_deadline"
                     if hotline.resolve_by == report.deadline else
                     f"sla.resolve.hotline_{report.urgency.value if report.urgency else ''}")
    return TimeLimits(Sla(accept_by=accept_by, resolve_by=resolve_by,
                          accept_by_source=accept_source, resolve_by_source=resolve_source),
                      fired)
