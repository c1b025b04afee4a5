"""Notify's event handlers: each case event updates what notify knows about the case and
becomes pending deliveries (webhooks to matching subscriptions, feedback to the hotline,
an SMS to the citizen), written durably in the consumer's transaction. Sending happens
later, in the sender."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.api_notify import (
    KIND_ASSIGNED,
    KIND_LIFECYCLE,
    KIND_ROUTED,
    KIND_WITHDRAWN_FROM,
    HotlineFeedback,
    lifecycle_kind,
    notice_kind,
    supervision_kind,
)
from contracts.enums import Status
from contracts.events import (
    CaseLifecycleEvent,
    CaseReportedEvent,
    CaseRoutedEvent,
    CaseSupervisionEvent,
    case_id_of,
)
from kit.bus import encode
from kit.consumer import Delivery
from kit.settings import Settings
from services.notify.domain import (
    SMS_CLOSED,
    SMS_RECEIVED,
    CaseFacts,
    Notice,
    SubscriptionFilter,
    callback_destination,
    disclosed,
    feedback_at,
    hotline_feedback,
    lifecycle_facts,
    outcome_summary,
    redact_lifecycle,
    reported_facts,
    sms_text,
    texts_the_citizen,
    wants_sms_on_closure,
    wants_sms_on_receipt,
)
from services.notify.store import (
    HOTLINE_FEEDBACK,
    PENDING,
    SMS,
    WEBHOOK,
    cases,
    deliveries,
    endpoints,
    insert_new,
    subscriptions,
    upsert,
)

# Subscriptions change rarely and every event is matched against all of them: read them at
# most once a second (and at once after a change through this process's API).
SUBSCRIPTION_CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class ActiveSubscription:
    id: str
    filter: SubscriptionFilter


class SubscriptionBook:
    """The active subscriptions, cached briefly."""

    def __init__(self, ttl: float = SUBSCRIPTION_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._loaded_at = float("-inf")
        self._active: list[ActiveSubscription] = []

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")

    async def active(self, session: AsyncSession) -> list[ActiveSubscription]:
        if time.monotonic() - self._loaded_at > self.ttl:
            rows = (await session.execute(select(subscriptions).where(
                subscriptions.c.deleted_at.is_(None)))).all()
            self._active = [ActiveSubscription(r.id, SubscriptionFilter(
                frozenset(r.kinds), frozenset(r.departments), frozenset(r.tiers),
                frozenset(r.risks), frozenset(r.categories), frozenset(r.jurisdictions),
                frozenset(r.channels)))
                for r in rows]
            self._loaded_at = time.monotonic()
        return self._active


def notice_body(event: CaseRoutedEvent, notice: str) -> bytes:
    """A corrected routing's webhook body: the routed event with a `notice` extension
    attribute (CloudEvents allows them) saying what it means to this receiver: `assigned`
    (the case is now yours) or `withdrawn` (it no longer is)."""
    return orjson.dumps({**orjson.loads(encode(event)), "notice": notice})


def pending_delivery(target: str, receiver: str, event_id: str, case_id: str, kind: str,
                     body: bytes, url: str | None = None) -> dict[str, Any]:
    return {"target": target, "subscription_id": receiver, "url": url,
            "endpoint_key_id": None, "event_id": event_id, "case_id": case_id, "kind": kind,
            "body": body, "status": PENDING, "attempts": 0, "next_attempt_at": time.time(),
            "created_at": datetime.now(UTC)}


class CaseBook:
    """The facts of the cases one run of events is about: read once, changed in memory in the
    events' order (so each event sees its case as the events before it left it), and written
    at the end with one upsert per case. Each upsert names only the columns the run's events
    set, as one upsert per event would: events about one case arrive on several topics and
    may be handled by different processes, each setting just the facts it knows."""

    def __init__(self) -> None:
        self.facts: dict[str, CaseFacts] = {}
        self._changed: dict[str, dict[str, Any]] = {}
        # The steps each integration's registered callback endpoint wants, by key id.
        self.endpoints: dict[str, frozenset[str]] = {}

    async def load(self, session: AsyncSession, case_ids: set[str],
                   integration_key_ids: Collection[str] = ()) -> None:
        """The cases' facts, and the endpoints of their integrations and of
        `integration_key_ids` (the run's reports')."""
        names = [f.name for f in fields(CaseFacts)]
        rows = (await session.execute(select(*(cases.c[n] for n in names)).where(
            cases.c.case_id.in_(sorted(case_ids))))).all()
        self.facts = {case_id: CaseFacts(case_id=case_id) for case_id in case_ids}
        for row in rows:
            self.facts[row.case_id] = CaseFacts(**dict(zip(names, row, strict=True)))
        keys = set(integration_key_ids) | {f.integration_key_id for f in self.facts.values()
                                           if f.integration_key_id and not f.callback_url}
        if keys:
            found = (await session.execute(select(endpoints.c.key_id, endpoints.c.kinds).where(
                endpoints.c.key_id.in_(sorted(keys))))).all()
            self.endpoints = {row.key_id: frozenset(row.kinds) for row in found}

    def remember(self, case_id: str, facts: dict[str, Any]) -> CaseFacts:
        self.facts[case_id] = replace(self.facts[case_id], **facts)
        self._changed.setdefault(case_id, {}).update(facts)
        return self.facts[case_id]

    async def save(self, session: AsyncSession) -> None:
        now = datetime.now(UTC)
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for case_id, changed in self._changed.items():
            by_columns.setdefault(tuple(sorted(changed)), []).append(
                {"case_id": case_id, **changed, "updated_at": now})
        for rows in by_columns.values():
            await upsert(session, cases, rows, key=["case_id"])


class NotifyHandlers:
    """Turns a run of case events into facts and pending deliveries with a handful of
    statements: the cases read once, the facts written once per case, every delivery in one
    insert (per event, one by one, notify could not keep up with the router)."""

    def __init__(self, settings: Settings, book: SubscriptionBook) -> None:
        self.settings = settings
        self.book = book

    async def handle_batch(self, session: AsyncSession, batch: list[Delivery]) -> None:
        cases_of_run = CaseBook()
        await cases_of_run.load(session, {case_id_of(d.message) for d in batch}, {
            d.message.data.integration_key_id for d in batch
            if isinstance(d.message, CaseReportedEvent) and d.message.data.integration_key_id
            and not d.message.data.callback_url})
        active = await self.book.active(session)
        queued: list[dict[str, Any]] = []
        for delivery in batch:
            event = delivery.message
            if isinstance(event, CaseReportedEvent):
                queued += self._on_reported(cases_of_run, event)
            elif isinstance(event, CaseRoutedEvent):
                queued += self._on_routed(cases_of_run, active, event)
            elif isinstance(event, CaseLifecycleEvent):
                queued += self._on_lifecycle(cases_of_run, active, event)
            elif isinstance(event, CaseSupervisionEvent):
                queued += self._on_supervision(cases_of_run, active, event)
        await cases_of_run.save(session)
        await insert_new(session, deliveries, queued, unique=["subscription_id", "event_id"])

    def _on_reported(self, book: CaseBook, event: CaseReportedEvent) -> list[dict[str, Any]]:
        report = event.data
        steps_came_first = book.facts[report.case_id].status is not None
        facts = book.remember(report.case_id, reported_facts(report))
        queued = []
        texted = self.settings.sms_channels
        if self.settings.sms_enabled and wants_sms_on_receipt(report, texted):
            text = sms_text(self.settings.sms_template_received, case_id=report.case_id,
                            external_id=report.external_id)
            queued.append(self._sms(event.id, report.case_id, SMS_RECEIVED, text))
        if steps_came_first:
            queued += self._owed_since_the_steps(book, facts, event)
        return queued

    def _owed_since_the_steps(self, book: CaseBook, facts: CaseFacts,
                              event: CaseReportedEvent) -> list[dict[str, Any]]:
        """The case's steps were handled before its report (another topic, an earlier batch:
        notify catching up): the closure's feedback to the hotline and SMS to the citizen
        could not be queued then, for want of the callback and the channel. Queued now, as
        the case stands; their ids derive from the report's, so a redelivery adds nothing."""
        queued = []
        # The furthest of the steps the hotline hears of (a case archived since still was
        # closed); one feedback says all of it: closure, visit and rating.
        status = (Status.RATED if facts.satisfaction is not None else
                  Status.VISITED if facts.visited_at is not None else
                  Status.CLOSED if facts.closed_at is not None else None)
        feedback = feedback_at(facts, status, event.data.external_id) if status else None
        if feedback is not None:
            # Who closed the case is not known here (its steps came first): the department.
            feedback = disclosed(feedback, None, name_handler=False,
                                 contacts=self.settings.hotline_department_contacts)
            queued += self._feedback(book, f"{event.id}.{feedback.status.value}", facts,
                                     feedback)
        texted = self.settings.sms_channels
        if (self.settings.sms_enabled and facts.closed_at is not None
                and texts_the_citizen(facts, texted)):
            queued.append(self._closing_sms(f"{event.id}.closed", facts,
                                            event.data.external_id))
        return queued

    def _on_routed(self, book: CaseBook, active: list[ActiveSubscription],
                   event: CaseRoutedEvent) -> list[dict[str, Any]]:
        routed = event.data
        decision = routed.decision
        departments = [decision.lead_department.value,
                       *(d.value for d in decision.cooperating_departments)]
        jurisdiction = decision.jurisdiction.code if decision.jurisdiction else None
        if routed.awaiting_dispatch:
            departments = []  # nobody leads it until a dispatcher decides
        book.remember(routed.case_id, {
            "category": decision.category.value, "risk": decision.risk.value,
            "tier": decision.tier.value, "lead_department": departments[0] if departments
            else None, "cooperating_departments": departments[1:], "jurisdiction": jurisdiction,
            "channel": routed.channel.value})
        channel = routed.channel.value
        correction = routed.correction
        if correction is None:
            notice = Notice(KIND_ROUTED, frozenset(departments), decision.tier.value,
                            decision.risk.value, decision.category.value, jurisdiction, channel)
            return self._webhooks(active, event.id, routed.case_id, notice, encode(event))
        # A corrected routing: assigned to the new departments, withdrawn from the one that
        # held it (one delivery per subscription: a subscription for both hears "assigned").
        queued: list[dict[str, Any]] = []
        if departments:
            assigned = Notice(KIND_ASSIGNED, frozenset(departments), decision.tier.value,
                              decision.risk.value, decision.category.value, jurisdiction, channel)
            queued = self._webhooks(active, event.id, routed.case_id, assigned,
                                    notice_body(event, "assigned"))
        previous = correction.previous_lead_department
        if previous is not None and previous.value not in departments:
            told = {d["subscription_id"] for d in queued}
            withdrawn = Notice(KIND_WITHDRAWN_FROM, frozenset({previous.value}),
                               decision.tier.value, decision.risk.value,
                               decision.category.value, jurisdiction, channel)
            body = notice_body(event, "withdrawn")
            queued += [pending_delivery(WEBHOOK, sub.id, event.id, routed.case_id,
                                        withdrawn.kind, body)
                       for sub in active if sub.id not in told and sub.filter.admits(withdrawn)]
        return queued

    def _on_lifecycle(self, book: CaseBook, active: list[ActiveSubscription],
                      event: CaseLifecycleEvent) -> list[dict[str, Any]]:
        step = event.data
        facts = book.remember(step.case_id, lifecycle_facts(step))
        kind = (f"{KIND_LIFECYCLE}.{step.activity.value}" if step.activity
                else lifecycle_kind(step.to_status))
        notice = facts.notice(kind,
                              departments=[step.lead_department.value if step.lead_department
                                           else None],
                              tier=step.tier.value if step.tier else None)
        body = encode(event.model_copy(update={"data": redact_lifecycle(step)}))
        queued = self._webhooks(active, event.id, step.case_id, notice, body)
        feedback = hotline_feedback(facts, step)
        if feedback is not None:
            feedback = disclosed(feedback, step.actor,
                                 name_handler=self.settings.hotline_disclose_handler,
                                 contacts=self.settings.hotline_department_contacts)
            queued += self._feedback(book, event.id, facts, feedback, kind)
        if self.settings.sms_enabled and wants_sms_on_closure(facts, step,
                                                              self.settings.sms_channels):
            queued.append(self._closing_sms(event.id, facts, step.external_id))
        return queued

    def _on_supervision(self, book: CaseBook, active: list[ActiveSubscription],
                        event: CaseSupervisionEvent) -> list[dict[str, Any]]:
        notice_of = event.data
        facts = book.facts[notice_of.case_id]
        # A notice by hand has kinds of its own (supervision.notice.raised: the leader's).
        kind = (notice_kind(notice_of.notice.action) if notice_of.notice is not None
                else supervision_kind(notice_of.level))
        notice = facts.notice(kind,
                              departments=[notice_of.lead_department.value
                                           if notice_of.lead_department else None],
                              tier=notice_of.tier.value)
        return self._webhooks(active, event.id, notice_of.case_id, notice, encode(event))

    @staticmethod
    def _webhooks(active: list[ActiveSubscription], event_id: str, case_id: str,
                  notice: Notice, body: bytes) -> list[dict[str, Any]]:
        return [pending_delivery(WEBHOOK, sub.id, event_id, case_id, notice.kind, body)
                for sub in active if sub.filter.admits(notice)]

    @staticmethod
    def _feedback(book: CaseBook, event_id: str, facts: CaseFacts, feedback: HotlineFeedback,
                  kind: str | None = None) -> list[dict[str, Any]]:
        """The callback to the order's callback_url or its integration's endpoint, if any."""
        destination = callback_destination(facts, feedback.step, book.endpoints)
        if destination is None:
            return []
        queued = pending_delivery(
            HOTLINE_FEEDBACK, HOTLINE_FEEDBACK, event_id, facts.case_id,
            kind or lifecycle_kind(feedback.status),
            orjson.dumps(feedback.model_dump(mode="json")), url=destination.url)
        return [{**queued, "endpoint_key_id": destination.endpoint_key_id}]

    def _closing_sms(self, event_id: str, facts: CaseFacts, external_id: str
                     ) -> dict[str, Any]:
        text = sms_text(self.settings.sms_template_closed, case_id=facts.case_id,
                        external_id=external_id, result=outcome_summary(facts))
        return self._sms(event_id, facts.case_id, SMS_CLOSED, text)

    @staticmethod
    def _sms(event_id: str, case_id: str, template: str, text: str) -> dict[str, Any]:
        # The number is looked up only when sending: the stored message has none.
        body = orjson.dumps({"case_id": case_id, "template": template, "text": text})
        return pending_delivery(SMS, SMS, event_id, case_id, f"sms.{template}", body)
