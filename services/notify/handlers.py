"""Notify's event handlers: each event becomes one pending delivery per matching
subscription, written durably in the consumer's transaction (sending happens later)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.events import CaseRoutedEvent
from kit.bus import encode
from kit.consumer import Delivery
from services.notify.domain import SubscriptionFilter
from services.notify.store import deliveries, subscriptions

KIND_ROUTED = "routed"
PENDING, SUCCEEDED, DEAD = "pending", "succeeded", "dead"


async def _queue(session: AsyncSession, event_id: str, case_id: str, kind: str,
                 departments: set[str], body: bytes) -> None:
    subs = (await session.execute(select(subscriptions.c.id, subscriptions.c.kinds,
                                         subscriptions.c.departments)
                                  .where(subscriptions.c.deleted_at.is_(None)))).all()
    now = datetime.now(UTC)
    rows = [
        {"subscription_id": s.id, "event_id": event_id, "case_id": case_id, "kind": kind,
         "body": body, "status": PENDING, "attempts": 0, "next_attempt_at": time.time(),
         "created_at": now}
        for s in subs
        if SubscriptionFilter(frozenset(s.kinds), frozenset(s.departments)).matches(
            kind, departments)
    ]
    if not rows:
        return
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    insert = postgresql.insert(deliveries) if dialect == "postgresql" else sqlite.insert(deliveries)
    await session.execute(insert.on_conflict_do_nothing(
        index_elements=["subscription_id", "event_id"]), rows)


async def on_routed(session: AsyncSession, delivery: Delivery) -> None:
    event = delivery.message
    assert isinstance(event, CaseRoutedEvent)
    decision = event.data.decision
    departments = {decision.lead_department.value}
    await _queue(session, event.id, event.data.case_id, KIND_ROUTED, departments, encode(event))
