"""Notify's event handlers: each case event updates what notify knows about the case and
becomes pending deliveries (webhooks to matching subscriptions, feedback to the hotline,
an SMS to the citizen), written durably in the consumer's transaction. Sending happens
later, in the sender."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.api_notify import KIND_ROUTED, lifecycle_kind, supervision_kind
from contracts.events import (
    CaseLifecycleEvent,
    CaseReportedEvent,
    CaseRoutedEvent,
    CaseSupervisionEvent,
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
    hotline_feedback,
    lifecycle_facts,
    outcome_summary,
    redact_lifecycle,
    reported_facts,
    sms_text,
    wants_sms_on_closure,
    wants_sms_on_receipt,
)
from services.notify.store import (
    HOTLINE_FEEDBACK,
    PENDING,
    SMS,
    WEBHOOK,
    CaseRecord,
    cases,
    deliveries,
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
                frozenset(r.risks), frozenset(r.categories), frozenset(r.jurisdictions)))
                for r in rows]
            self._loaded_at = time.monotonic()
        return self._active


def pending_delivery(target: str, receiver: str, event_id: str, case_id: str, kind: str,
                     body: bytes, url: str | None = None) -> dict[str, Any]:
    return {"target": target, "subscription_id": receiver, "url": url, "event_id": event_id,
            "case_id": case_id, "kind": kind, "body": body, "status": PENDING, "attempts": 0,
            "next_attempt_at": time.time(), "created_at": datetime.now(UTC)}


async def load_facts(session: AsyncSession, case_id: str) -> CaseFacts:
    row = await session.get(CaseRecord, case_id)
    if row is None:
        return CaseFacts(case_id=case_id)
    return CaseFacts(**{f.name: getattr(row, f.name) for f in fields(CaseFacts)})


class NotifyHandlers:
    def __init__(self, settings: Settings, book: SubscriptionBook) -> None:
        self.settings = settings
        self.book = book

    async def on_reported(self, session: AsyncSession, delivery: Delivery) -> None:
        event = delivery.message
        assert isinstance(event, CaseReportedEvent)
        report = event.data
        await self._remember(session, report.case_id, reported_facts(report))
        if self.settings.sms_enabled and wants_sms_on_receipt(report):
            text = sms_text(self.settings.sms_template_received, case_id=report.case_id,
                            external_id=report.external_id)
            await self._queue_sms(session, event.id, report.case_id, SMS_RECEIVED, text)

    async def on_routed(self, session: AsyncSession, delivery: Delivery) -> None:
        event = delivery.message
        assert isinstance(event, CaseRoutedEvent)
        decision = event.data.decision
        departments = [decision.lead_department.value,
                       *(d.value for d in decision.cooperating_departments)]
        jurisdiction = decision.jurisdiction.code if decision.jurisdiction else None
        await self._remember(session, event.data.case_id, {
            "category": decision.category.value, "risk": decision.risk.value,
            "tier": decision.tier.value, "lead_department": decision.lead_department.value,
            "cooperating_departments": departments[1:], "jurisdiction": jurisdiction})
        notice = Notice(KIND_ROUTED, frozenset(departments), decision.tier.value,
                        decision.risk.value, decision.category.value, jurisdiction)
        await self._queue_webhooks(session, event.id, event.data.case_id, notice, encode(event))

    async def on_lifecycle(self, session: AsyncSession, delivery: Delivery) -> None:
        event = delivery.message
        assert isinstance(event, CaseLifecycleEvent)
        step = event.data
        await self._remember(session, step.case_id, lifecycle_facts(step))
        facts = await load_facts(session, step.case_id)
        notice = facts.notice(lifecycle_kind(step.to_status),
                              departments=[step.lead_department.value if step.lead_department
                                           else None],
                              tier=step.tier.value if step.tier else None)
        body = encode(event.model_copy(update={"data": redact_lifecycle(step)}))
        await self._queue_webhooks(session, event.id, step.case_id, notice, body)
        feedback = hotline_feedback(facts, step)
        if feedback is not None:
            await insert_new(session, deliveries, [pending_delivery(
                HOTLINE_FEEDBACK, HOTLINE_FEEDBACK, event.id, step.case_id, notice.kind,
                orjson.dumps(feedback.model_dump(mode="json")), url=facts.callback_url)],
                unique=["subscription_id", "event_id"])
        if self.settings.sms_enabled and wants_sms_on_closure(facts, step):
            text = sms_text(self.settings.sms_template_closed, case_id=step.case_id,
                            external_id=step.external_id, result=outcome_summary(facts))
            await self._queue_sms(session, event.id, step.case_id, SMS_CLOSED, text)

    async def on_supervision(self, session: AsyncSession, delivery: Delivery) -> None:
        event = delivery.message
        assert isinstance(event, CaseSupervisionEvent)
        notice_of = event.data
        facts = await load_facts(session, notice_of.case_id)
        notice = facts.notice(supervision_kind(notice_of.level),
                              departments=[notice_of.lead_department.value
                                           if notice_of.lead_department else None],
                              tier=notice_of.tier.value)
        await self._queue_webhooks(session, event.id, notice_of.case_id, notice, encode(event))

    async def _remember(self, session: AsyncSession, case_id: str, facts: dict[str, Any]
                        ) -> None:
        await upsert(session, cases, {"case_id": case_id, **facts,
                                      "updated_at": datetime.now(UTC)}, key=["case_id"])

    async def _queue_webhooks(self, session: AsyncSession, event_id: str, case_id: str,
                              notice: Notice, body: bytes) -> None:
        rows = [pending_delivery(WEBHOOK, sub.id, event_id, case_id, notice.kind, body)
                for sub in await self.book.active(session) if sub.filter.admits(notice)]
        await insert_new(session, deliveries, rows, unique=["subscription_id", "event_id"])

    async def _queue_sms(self, session: AsyncSession, event_id: str, case_id: str,
                         template: str, text: str) -> None:
        # The number is looked up only when sending: the stored message has none.
        body = orjson.dumps({"case_id": case_id, "template": template, "text": text})
        await insert_new(session, deliveries, [pending_delivery(
            SMS, SMS, event_id, case_id, f"sms.{template}", body)],
            unique=["subscription_id", "event_id"])
