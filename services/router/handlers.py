"""Router's event handlers: route each reported case, and route again on escalation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.enums import Status, Tier
from contracts.events import (
    CaseLifecycleEvent,
    CaseReported,
    CaseReportedEvent,
    CaseRouted,
    CaseRoutedEvent,
    RoutingDecision,
)
from contracts.topics import CASE_ROUTED
from kit.consumer import Delivery
from kit.metrics import CASES_ROUTED, ROUTING_LATENCY
from kit.outbox import add_to_outbox, outbox_row
from services.router.domain.policy import route_case
from services.router.rulebook import Rulebook
from services.router.store import decisions, identity_hashes, kit_tables, reports

REPEAT_WINDOW = timedelta(days=90)


def identity_hashes_of(report: CaseReported) -> set[str]:
    """The keyed hashes of every phone and id number in the report (never the numbers)."""
    people = [p for p in (report.reporter, *report.parties) if p is not None]
    return {h for p in people for h in (p.phone_hash, p.id_number_hash) if h}


async def count_prior_related(session: AsyncSession, report: CaseReported,
                              hashes: set[str]) -> int:
    """Earlier cases within 90 days that share a phone or id number hash with this one."""
    if not hashes:
        return 0
    return int((await session.execute(
        select(func.count(distinct(identity_hashes.c.case_id))).where(
            identity_hashes.c.identity_hash.in_(sorted(hashes)),
            identity_hashes.c.case_id != report.case_id,
            identity_hashes.c.received_at >= report.received_at - REPEAT_WINDOW,
            identity_hashes.c.received_at < report.received_at))).scalar_one())


async def _publish(session: AsyncSession, report: CaseReported, decision: RoutingDecision,
                   routing_round: int) -> None:
    now = datetime.now(UTC)
    await session.execute(decisions.insert().values(
        case_id=report.case_id, routing_round=routing_round,
        decision=decision.model_dump(mode="json"), routed_at=now))
    event = CaseRoutedEvent.wrap(CaseRouted(
        case_id=report.case_id, channel=report.channel, external_id=report.external_id,
        received_at=report.received_at, routed_at=now, routing_round=routing_round,
        decision=decision), source="router", subject=report.case_id)
    await add_to_outbox(session, kit_tables.outbox, [outbox_row(CASE_ROUTED, event)])
    CASES_ROUTED.labels(decision.tier.value, decision.lead_department.value,
                        decision.risk.value).inc()
    if routing_round == 1:
        ROUTING_LATENCY.observe(max(0.0, (now - report.received_at).total_seconds()))


class RouterHandlers:
    """The router's two handlers, deciding with the rulebook's active version."""

    def __init__(self, rulebook: Rulebook) -> None:
        self.rulebook = rulebook

    async def on_reported(self, session: AsyncSession, delivery: Delivery) -> None:
        event = delivery.message
        assert isinstance(event, CaseReportedEvent)
        report = event.data
        already = (await session.execute(select(reports.c.case_id).where(
            reports.c.case_id == report.case_id))).first()
        if already is not None:
            return  # routed already (the same report published twice by intake's relay)
        hashes = identity_hashes_of(report)
        prior = await count_prior_related(session, report, hashes)
        decision = route_case(report, self.rulebook.rules, self.rulebook.tree,
                              prior_related=prior)
        await session.execute(reports.insert().values(
            case_id=report.case_id, report=report.model_dump(mode="json"), routing_round=1,
            tier=decision.tier.value))
        if hashes:
            await session.execute(identity_hashes.insert(), [
                {"identity_hash": h, "case_id": report.case_id,
                 "received_at": report.received_at} for h in sorted(hashes)])
        await _publish(session, report, decision, 1)

    async def on_lifecycle(self, session: AsyncSession, delivery: Delivery) -> None:
        """An escalated case is routed again, at least one tier above the one that failed."""
        event = delivery.message
        assert isinstance(event, CaseLifecycleEvent)
        if event.data.to_status is not Status.ESCALATED:
            return
        row = (await session.execute(select(reports).where(
            reports.c.case_id == event.data.case_id))).first()
        if row is None:
            return
        report = CaseReported.model_validate(row.report)
        routing_round = row.routing_round + 1
        prior = await count_prior_related(session, report, identity_hashes_of(report))
        decision = route_case(report, self.rulebook.rules, self.rulebook.tree,
                              prior_related=prior, routing_round=routing_round,
                              escalate_from=Tier(row.tier), now=event.data.at)
        await session.execute(reports.update().where(reports.c.case_id == report.case_id)
                              .values(routing_round=routing_round, tier=decision.tier.value))
        await _publish(session, report, decision, routing_round)
