"""The routing decision: a CaseReported in, a RoutingDecision out, every step from the rules.

This is where a report becomes a routed case. It reads the text once, chooses the
category, weighs the risk, sets the tier, names the departments and the time limits, and
says which rules fired and why. No I/O: the caller passes the rules, the jurisdiction
tree and the number of prior related cases.
"""

from __future__ import annotations

from datetime import datetime

from contracts.enums import Tier
from contracts.events import CaseReported, GeoPoint, Place, RoutingDecision
from services.router.domain import reading
from services.router.domain.category import choose_category
from services.router.domain.departments import assign_departments
from services.router.domain.explanation import explain
from services.router.domain.facts import CaseFacts
from services.router.domain.jurisdictions import TIER_LEVEL, JurisdictionTree, Location
from services.router.domain.reader import TextReader, default_reader
from services.router.domain.readers import Second, reader_category, reader_risk, second_reading
from services.router.domain.risk import assess_risk
from services.router.domain.rules import RoutingRules
from services.router.domain.sla import time_limits
from services.router.domain.tiers import decide_tier, keep_tier_on_return


def route_case(report: CaseReported, rules: RoutingRules, tree: JurisdictionTree, *,
               prior_related: int = 0, routing_round: int = 1,
               escalate_from: Tier | None = None,
               now: datetime | None = None, keep_tier: Tier | None = None,
               use_reader: bool = True, reader: TextReader | None = None) -> RoutingDecision:
    """Decide category, risk, tier, departments, jurisdiction and time limits for a report.

    `prior_related` counts earlier cases (90 days) sharing a phone or id number hash.
    `escalate_from` is the tier whose mediation failed: the case goes at least one above.
    `now` starts the time limits of a case routed again; a first routing counts from receipt.
    `keep_tier` is the tier of a case returned by its lead department: routed again there.
    `reader` is the learned second reader (readers.py); the shipped model unless given, none
    with `use_reader=False`.
    """
    if now is not None and now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    text = reading.read(report.text, rules, year=report.received_at.year)
    rules_category = category = choose_category(report.channel, report.channel_category, text,
                                                rules)
    if reader is None and use_reader:
        reader = default_reader()
    verdict = reader.read(text.text) if reader is not None else None
    if verdict is not None:
        category = reader_category(category, verdict)
    signals = dict(text.signals)
    if report.injuries is not None:
        # The channel's own injuries field is better evidence than the words.
        if report.injuries:
            signals[reading.INJURY] = ["injuries"]
        else:
            signals.pop(reading.INJURY, None)
    location = tree.locate(report)
    addresses = [party.address for party in (report.reporter, *report.parties)
                 if party is not None and party.address]
    facts = CaseFacts(
        channel=report.channel,
        category=category.category,
        amount=report.amount if report.amount is not None else text.quantities.largest_amount,
        people=report.people_count if report.people_count is not None else _head_count(
            report, text),
        signals=signals,
        prior_related=prior_related,
        parties_apart=tree.parties_apart(addresses) if len(addresses) > 1 else None,
    )
    rules_risk = risk = assess_risk(facts, rules)
    second = Second()
    if verdict is not None:
        # Either reader's red stands: the tier, the police station and 2 hours follow it.
        risk = reader_risk(rules_risk, verdict)
        second = second_reading(rules_category, category, rules_risk, verdict)
    facts = facts.with_risk(risk.risk)
    tier = decide_tier(facts, rules, escalate_from=escalate_from)
    if keep_tier is not None:
        tier = keep_tier_on_return(tier, keep_tier)
    assignment = assign_departments(facts, tier.tier, rules)
    jurisdiction = place = None
    if location is not None:
        jurisdiction = tree.at_level(location.node, TIER_LEVEL[tier.tier]).ref()
        place = _place(tree, location)
    routed_again = escalate_from is not None or keep_tier is not None or routing_round > 1
    start = now if routed_again and now is not None else report.received_at
    limits = time_limits(report, risk.risk, tier.tier, rules, start)
    fired = [category.rule, *risk.fired, *tier.fired, *assignment.fired, *limits.fired,
             *second.fired]
    if location is not None:
        fired.append(f"jurisdiction.{location.source}")
    return RoutingDecision(
        category=category.category,
        category_confidence=category.confidence,
        category_terms=category.terms,
        risk=risk.risk,
        risk_signals=risk.signals,
        tier=tier.tier,
        lead_department=assignment.lead,
        cooperating_departments=assignment.cooperating,
        jurisdiction=jurisdiction,
        place=place,
        sla=limits.sla,
        rules_fired=fired,
        explanation=explain(category, risk, tier, assignment, jurisdiction, routing_round,
                            second=(second.zh, second.en) if verdict is not None else None,
                            by_coordinates=location is not None
                            and location.source == "coordinates"),
        rules_version=rules.version,
        review=second.review,
    )


def _place(tree: JurisdictionTree, location: Location) -> Place:
    centre = tree.centre(location.node.code)
    return Place(**location.node.ref().model_dump(), source=location.source,
                 centre=GeoPoint(lon=centre[0], lat=centre[1]) if centre else None)


def _head_count(report: CaseReported, text: reading.Reading) -> int | None:
    """People on one side, from the text or, if more, the parties listed under one role."""
    from_text = text.quantities.largest_head_count
    by_role: dict[str, int] = {}
    for party in report.parties:
        by_role[party.role] = by_role.get(party.role, 0) + 1
    from_parties = max(by_role.values(), default=0)
    if from_text is None:
        return from_parties if from_parties >= 2 else None
    return max(from_text, from_parties)
