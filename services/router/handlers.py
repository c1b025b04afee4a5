"""Router's event handlers: route each reported case, route again on escalation and on a
return by the lead department, and keep the dispatchers' decisions beside the router's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.enums import Category, CorrectionKind, Department, Risk, Status, Tier
from contracts.envelope import SOURCE_PREFIX
from contracts.events import (
    CaseLifecycle,
    CaseLifecycleEvent,
    CaseReported,
    CaseReportedEvent,
    CaseRouted,
    CaseRoutedEvent,
    Correction,
    RoutingDecision,
)
from contracts.topics import CASE_ROUTED, correction_kind_header
from kit.consumer import Delivery, data_field_in
from kit.metrics import CASES_ROUTED, FIRST_ROUTINGS, ROUTING_LATENCY, ROUTING_RETURNS
from kit.outbox import add_to_outbox, outbox_row
from services.router.domain.policy import route_case
from services.router.domain.returns import Returned, for_the_queue, reroute
from services.router.rulebook import Rulebook
from services.router.store import decisions, identity_hashes, kit_tables, reports

REPEAT_WINDOW = timedelta(days=90)


def identity_hashes_of(report: CaseReported) -> set[str]:
    """The keyed hashes of every phone and id number in the report (never the numbers)."""
    people = [p for p in (report.reporter, *report.parties) if p is not None]
    return {h for p in people for h in (p.phone_hash, p.id_number_hash) if h}


class PriorCases:
    """Who else, within 90 days before each report, shared a phone or id number hash.

    Loaded for a whole batch in one query, and extended with the batch's own reports as
    they are routed, so that two related reports in one batch still see each other."""

    def __init__(self, rows: list[tuple[str, str, datetime]]) -> None:
        self._by_hash: dict[str, list[tuple[str, datetime]]] = {}
        for identity_hash, case_id, received_at in rows:
            self.add(identity_hash, case_id, received_at)

    def add(self, identity_hash: str, case_id: str, received_at: datetime) -> None:
        self._by_hash.setdefault(identity_hash, []).append((case_id, received_at))

    def count(self, report: CaseReported, hashes: set[str]) -> int:
        since = report.received_at - REPEAT_WINDOW
        related = {case_id for h in hashes for case_id, at in self._by_hash.get(h, ())
                   if case_id != report.case_id and since <= at < report.received_at}
        return len(related)

    @classmethod
    async def load(cls, session: AsyncSession, batch: list[CaseReported]) -> PriorCases:
        hashes = sorted({h for r in batch for h in identity_hashes_of(r)})
        if not hashes:
            return cls([])
        since = min(r.received_at for r in batch) - REPEAT_WINDOW
        rows = (await session.execute(select(
            identity_hashes.c.identity_hash, identity_hashes.c.case_id,
            identity_hashes.c.received_at).where(
                identity_hashes.c.identity_hash.in_(hashes),
                identity_hashes.c.received_at >= since))).all()
        return cls([(r[0], r[1], r[2]) for r in rows])


def _routed_event(report: CaseReported, decision: RoutingDecision, routing_round: int,
                  now: datetime, correction: Correction | None = None,
                  awaiting_dispatch: bool = False) -> CaseRoutedEvent:
    """The CaseRouted event, assembled without validating again: its parts are a validated
    report and decision and values made here (validating them anew was a tenth of the
    router's per-case cost)."""
    routed = CaseRouted.model_construct(
        case_id=report.case_id, channel=report.channel, external_id=report.external_id,
        received_at=report.received_at, routed_at=now, routing_round=routing_round,
        decision=decision, correction=correction, awaiting_dispatch=awaiting_dispatch)
    return CaseRoutedEvent.model_construct(
        id=str(uuid.uuid4()), source=SOURCE_PREFIX + "router", type=CaseRoutedEvent.event_type,
        subject=report.case_id, time=now, data=routed)


# The counters' children, looked up once per label set (labels() on every case showed up).
@cache
def _cases_routed(tier: Tier, lead: Department, risk: Risk) -> Any:
    return CASES_ROUTED.labels(tier.value, lead.value, risk.value)


@cache
def _first_routings(category: Category) -> Any:
    return FIRST_ROUTINGS.labels(category.value)


@cache
def _routing_returns(category: Category) -> Any:
    return ROUTING_RETURNS.labels(category.value)


def _routed_rows(report: CaseReported, decision: RoutingDecision, routing_round: int,
                 now: datetime, correction: Correction | None = None,
                 awaiting_dispatch: bool = False
                 ) -> tuple[dict[str, object], dict[str, object]]:
    """The decision row and the outbox row that publishes it."""
    event = _routed_event(report, decision, routing_round, now, correction, awaiting_dispatch)
    _cases_routed(decision.tier, decision.lead_department, decision.risk).inc()
    if routing_round == 1:
        ROUTING_LATENCY.observe(max(0.0, (now - report.received_at).total_seconds()))
        _first_routings(decision.category).inc()
    elif correction is not None and correction.kind is CorrectionKind.RETURN:
        _routing_returns(decision.category).inc()
    dumped = event.model_dump(mode="json")  # once, for both the table and the topic
    return ({"case_id": report.case_id, "routing_round": routing_round,
             "decision": dumped["data"]["decision"], "routed_at": now,
             "kind": correction.kind.value if correction else None,
             "correction": dumped["data"].get("correction"),
             "awaiting_dispatch": awaiting_dispatch},
            outbox_row(CASE_ROUTED, event, dumped=dumped,
                       headers=correction_kind_header(correction)))


# The lifecycle steps the router acts on: a case escalated, or returned by its lead
# department, to be routed again.
ROUTES_AGAIN = frozenset({Status.ESCALATED, Status.RETURNED})


# The same tests on an event's JSON, before it is validated (kit.consumer: messages the router
# does not act on are not decoded at all).
MAY_ROUTE_AGAIN = data_field_in(CaseLifecycleEvent.event_type, ("to_status",),
                                {s.value for s in ROUTES_AGAIN},
                                {s.value for s in Status})


def is_escalation(event: BaseModel) -> bool:
    """A lifecycle step the router acts on (escalated or returned: routed again)."""
    # An activity (a progress note, an extension) is not a step the router acts on.
    return (isinstance(event, CaseLifecycleEvent) and event.data.activity is None
            and event.data.to_status in ROUTES_AGAIN)


def is_assigned_by_hand(event: BaseModel) -> bool:
    """A dispatcher's decision (mediation's routed event): kept beside the router's."""
    return (isinstance(event, CaseRoutedEvent) and event.data.correction is not None
            and event.data.correction.kind in BY_HAND)


BY_HAND = frozenset({CorrectionKind.REASSIGN, CorrectionKind.DISPATCH})
# The same on the header every routed event of fengqiao's carries (CORRECTION_KIND_HEADER).
BY_HAND_KINDS = frozenset(k.value.encode() for k in BY_HAND)
MAY_BE_BY_HAND = data_field_in(CaseRoutedEvent.event_type, ("correction", "kind"),
                               {k.value for k in BY_HAND},
                               {k.value for k in CorrectionKind}, optional=True)


class RouterHandlers:
    """The router's two handlers, deciding with the rulebook's active version."""

    def __init__(self, rulebook: Rulebook) -> None:
        self.rulebook = rulebook
        for category in Category:  # exported from zero: a rate needs both sides
            FIRST_ROUTINGS.labels(category.value)
            ROUTING_RETURNS.labels(category.value)

    async def on_reported(self, session: AsyncSession, batch: list[Delivery]) -> None:
        """Route a batch of reports with a handful of queries, whatever its size."""
        incoming: dict[str, CaseReported] = {}
        as_received: dict[str, Any] = {}
        for delivery in batch:
            assert isinstance(delivery.message, CaseReportedEvent)
            incoming.setdefault(delivery.message.data.case_id, delivery.message.data)
            as_received.setdefault(delivery.message.data.case_id, delivery.payload["data"])
        already = set((await session.execute(select(reports.c.case_id).where(
            reports.c.case_id.in_(list(incoming))))).scalars())
        # Already routed: the same report published twice by intake's relay.
        todo = sorted((r for r in incoming.values() if r.case_id not in already),
                      key=lambda r: r.received_at)
        if not todo:
            return
        prior = await PriorCases.load(session, todo)
        rules, tree = self.rulebook.rules, self.rulebook.tree
        now = datetime.now(UTC)
        report_rows: list[dict[str, object]] = []
        hash_rows: list[dict[str, object]] = []
        decision_rows: list[dict[str, object]] = []
        outbox_rows: list[dict[str, object]] = []
        for report in todo:
            hashes = identity_hashes_of(report)
            decision = route_case(report, rules, tree,
                                  prior_related=prior.count(report, hashes))
            for h in sorted(hashes):
                prior.add(h, report.case_id, report.received_at)
                hash_rows.append({"identity_hash": h, "case_id": report.case_id,
                                  "received_at": report.received_at})
            report_rows.append({"case_id": report.case_id,
                                "report": as_received[report.case_id],
                                "routing_round": 1, "tier": decision.tier.value})
            decision_row, outbox = _routed_rows(report, decision, 1, now)
            decision_rows.append(decision_row)
            outbox_rows.append(outbox)
        await session.execute(reports.insert(), report_rows)
        if hash_rows:
            await session.execute(identity_hashes.insert(), hash_rows)
        await session.execute(decisions.insert(), decision_rows)
        await add_to_outbox(session, kit_tables.outbox, outbox_rows)

    async def on_lifecycle(self, session: AsyncSession, delivery: Delivery) -> None:
        """An escalated case is routed again, at least one tier above the one that failed;
        a returned one at the same tier, never to a department that returned it (or, after
        two returns or with none left, to the dispatch queue)."""
        event = delivery.message
        if not is_escalation(event):
            return
        assert isinstance(event, CaseLifecycleEvent)
        step = event.data
        row = (await session.execute(select(reports).where(
            reports.c.case_id == step.case_id))).first()
        if row is None:
            return
        report = CaseReported.model_validate(row.report)
        # A dispatcher's round may not have reached us yet: the step knows the case's round.
        routing_round = max(row.routing_round, step.routing_round or 0) + 1
        returning = step.to_status is Status.RETURNED
        # The tier the case had when it was returned (a dispatcher's may not have reached us).
        held_at = step.tier if returning and step.tier else Tier(row.tier)
        prior = await PriorCases.load(session, [report])
        decision = route_case(report, self.rulebook.rules, self.rulebook.tree,
                              prior_related=prior.count(report, identity_hashes_of(report)),
                              routing_round=routing_round,
                              escalate_from=None if returning else Tier(row.tier),
                              keep_tier=held_at if returning else None,
                              now=step.at)
        correction: Correction | None = None
        awaiting_dispatch = False
        progress: dict[str, Any] = {}
        if returning:
            decision, correction, awaiting_dispatch, progress = self._after_return(
                step, row, decision, routing_round, held_at)
        await session.execute(reports.update().where(reports.c.case_id == report.case_id)
                              .values(routing_round=routing_round, tier=decision.tier.value,
                                      **progress))
        decision_row, outbox = _routed_rows(report, decision, routing_round, datetime.now(UTC),
                                            correction, awaiting_dispatch)
        await session.execute(decisions.insert(), [decision_row])
        await add_to_outbox(session, kit_tables.outbox, [outbox])

    def _after_return(self, step: CaseLifecycle, row: Any, decision: RoutingDecision,
                      routing_round: int, tier: Tier
                      ) -> tuple[RoutingDecision, Correction, bool, dict[str, Any]]:
        department = step.lead_department
        returned_by = [Department(d) for d in row.returned_by or []]
        if department is not None and department not in returned_by:
            returned_by.append(department)
        returned = Returned(department=department, reason=step.reason or "",
                            returns=(row.returns or 0) + 1, returned_by=tuple(returned_by),
                            suggested=step.data.suggested_department, tier=tier)
        rerouted = reroute(decision, returned, self.rulebook.rules, routing_round)
        correction = Correction(kind=CorrectionKind.RETURN, by=step.actor,
                                reason=step.reason or "", previous_lead_department=department,
                                returned_by=returned_by)
        progress = {"returns": returned.returns, "returned_by": [d.value for d in returned_by]}
        if rerouted is None:
            return for_the_queue(decision, returned, routing_round), correction, True, progress
        return rerouted, correction, False, progress

    async def on_assigned(self, session: AsyncSession, delivery: Delivery) -> None:
        """A dispatcher's decision, published by mediation: stored beside the router's (none
        is overwritten), and the round and tier the next return or escalation start from."""
        event = delivery.message
        if not is_assigned_by_hand(event):
            return
        assert isinstance(event, CaseRoutedEvent)
        routed = event.data
        exists = (await session.execute(select(decisions.c.case_id).where(
            decisions.c.case_id == routed.case_id,
            decisions.c.routing_round == routed.routing_round))).first()
        if exists is not None:
            return
        dumped = routed.model_dump(mode="json")
        assert routed.correction is not None
        await session.execute(decisions.insert(), [{
            "case_id": routed.case_id, "routing_round": routed.routing_round,
            "decision": dumped["decision"], "routed_at": routed.routed_at,
            "kind": routed.correction.kind.value, "correction": dumped["correction"],
            "awaiting_dispatch": False}])
        await session.execute(reports.update().where(
            reports.c.case_id == routed.case_id,
            reports.c.routing_round < routed.routing_round).values(
                routing_round=routed.routing_round, tier=routed.decision.tier.value))
