"""Sends due deliveries (webhooks, hotline feedback, SMS) concurrently, each under a timeout
and with at most a few in flight per receiver, so a slow or dead endpoint costs only its own
retries. Failures are retried with backoff and jitter on a durable schedule
(next_attempt_at), never by sleeping in the consumer; after the last attempt a delivery is
dead and a record with the reason goes to notify.deliveries.v1.dlq through the outbox.

One process sends (leader election on a PostgreSQL advisory lock, kit.leader): in-flight
bookkeeping is in memory, and one sender per database is enough for the load notify sees.
If it dies mid-attempt, the delivery is still pending and the next leader sends it again
(at least once; receivers deduplicate on webhook-id)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Table, and_, bindparam, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from contracts.api_notify import DeliveryDead, DeliveryDeadEvent
from contracts.topics import NOTIFY_DELIVERIES_DLQ
from kit import liveness
from kit.leader import run_as_leader
from kit.metrics import DELIVERIES, DELIVERY_ATTEMPT_DURATION, DLQ_MESSAGES
from kit.outbox import add_to_outbox, outbox_row
from kit.privacy import scrub
from kit.settings import Settings
from services.notify.destinations import Destinations
from services.notify.domain import (
    ContactDirectory,
    DeliveryFailed,
    SmsGateway,
    SmsMessage,
    message_id,
    next_attempt_delay,
    signing_secrets,
    webhook_headers,
    with_contact,
)
from services.notify.posting import WebhookPoster
from services.notify.store import (
    DEAD,
    HOTLINE_FEEDBACK,
    PENDING,
    SMS,
    SUCCEEDED,
    WEBHOOK,
    attempts,
    deliveries,
    subscriptions,
)

log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class Due:
    """A pending delivery whose time has come, with what sending it needs."""

    id: int
    target: str
    receiver: str  # subscription id, or the built-in target's name
    event_id: str
    case_id: str
    kind: str
    body: bytes
    attempts: int
    url: str | None
    secrets: tuple[str, ...]
    authorised_personal_data: bool
    unsubscribed: bool = False


@dataclass(frozen=True)
class Outcome:
    due: Due
    at: datetime
    status_code: int | None
    error: str | None
    permanent: bool
    duration: float


class DeliverySender:
    def __init__(self, settings: Settings, engine: AsyncEngine,
                 sessions: async_sessionmaker[AsyncSession], *, outbox: Table,
                 sms: SmsGateway, directory: ContactDirectory,
                 on_dead: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = sessions
        self.outbox = outbox
        self.sms = sms
        self.directory = directory
        self.destinations = Destinations(settings.webhook_denied_networks)
        self.on_dead = on_dead
        self.timeout = settings.delivery_timeout_seconds
        self.poll_seconds = min(0.5, settings.delivery_backoff_base_seconds)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._sending: Counter[str] = Counter()  # receiver → attempts in flight
        self._unrecorded: set[int] = set()  # in flight, or finished and not yet recorded
        self._finished: list[Outcome] = []

    def wake(self) -> None:
        """Look for due deliveries now (new ones were committed, or one was redelivered)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        try:
            await run_as_leader(self.engine, "fengqiao-notify-sender", self._send_loop,
                                self._stopping)
        finally:
            await self.sms.aclose()
            await self.directory.aclose()

    async def _send_loop(self) -> None:
        self._sending.clear()
        self._unrecorded.clear()
        self._finished = []
        tasks: set[asyncio.Task[None]] = set()
        async with WebhookPoster(self.timeout, self.settings.delivery_concurrency) as client:
            try:
                while not self._stopping.is_set():
                    self._wake.clear()
                    await self._record_finished()
                    limit = self._free_slots()
                    due = await self._due(limit) if limit > 0 else []
                    started = self._dispatch(client, tasks, due)
                    liveness.beat()
                    if not (started and len(due) == limit):
                        await self._sleep()  # until an attempt ends, news, or the poll
                if tasks:
                    await asyncio.wait(tasks, timeout=self.timeout + 1)
                await self._record_finished()
            finally:
                # Unfinished attempts stay pending and are sent again by the next leader.
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    def _free_slots(self) -> int:
        return self.settings.delivery_concurrency - sum(self._sending.values())

    async def _due(self, limit: int) -> list[Due]:
        cap = self.settings.delivery_max_in_flight_per_receiver
        busy = [r for r, n in self._sending.items() if n >= cap]
        query = (
            select(deliveries.c.id, deliveries.c.target, deliveries.c.subscription_id,
                   deliveries.c.event_id, deliveries.c.case_id, deliveries.c.kind,
                   deliveries.c.body, deliveries.c.attempts, deliveries.c.url,
                   subscriptions.c.url.label("subscription_url"), subscriptions.c.secret,
                   subscriptions.c.previous_secret, subscriptions.c.previous_secret_expires_at,
                   subscriptions.c.authorised_personal_data, subscriptions.c.deleted_at)
            .outerjoin(subscriptions, and_(deliveries.c.target == WEBHOOK,
                                           subscriptions.c.id == deliveries.c.subscription_id))
            .where(deliveries.c.status == PENDING, deliveries.c.next_attempt_at <= time.time(),
                   or_(deliveries.c.target != WEBHOOK, subscriptions.c.id.is_not(None)))
            .order_by(deliveries.c.next_attempt_at)
            .limit(limit))
        query = query.where(_in_case_order())
        if self._unrecorded:
            query = query.where(deliveries.c.id.not_in(self._unrecorded))
        if busy:
            # Receivers at their cap are left out, so their backlog cannot fill the batch.
            query = query.where(deliveries.c.subscription_id.not_in(busy))
        async with self.sessions() as session:
            rows = (await session.execute(query)).all()
        now = datetime.now(UTC)
        return [self._due_from(row, now) for row in rows]

    def _due_from(self, row: Any, now: datetime) -> Due:
        if row.target == WEBHOOK:
            keys = tuple(signing_secrets(row.secret, row.previous_secret,
                                         row.previous_secret_expires_at, now))
            url, authorised = row.subscription_url, bool(row.authorised_personal_data)
        else:
            # Each hotline integration signs with its own secrets (two during a rotation).
            keys = self.settings.hotline_signing_secrets(row.url) \
                if row.target == HOTLINE_FEEDBACK else ()
            url, authorised = row.url, False
        return Due(row.id, row.target, row.subscription_id, row.event_id, row.case_id,
                   row.kind, row.body, row.attempts, url, keys, authorised,
                   unsubscribed=row.target == WEBHOOK and row.deleted_at is not None)

    def _dispatch(self, client: WebhookPoster, tasks: set[asyncio.Task[None]],
                  due: list[Due]) -> int:
        """Start attempts within the caps; returns how many started."""
        cap = self.settings.delivery_max_in_flight_per_receiver
        started = 0
        for item in due:
            if self._sending[item.receiver] >= cap or self._free_slots() <= 0:
                continue
            self._sending[item.receiver] += 1
            self._unrecorded.add(item.id)
            task = asyncio.create_task(self._attempt(client, item))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            started += 1
        return started

    async def _sleep(self) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
        except TimeoutError:
            pass

    async def _attempt(self, client: WebhookPoster, due: Due) -> None:
        at = datetime.now(UTC)
        started = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        permanent = False
        try:
            async with asyncio.timeout(self.timeout):
                status_code = await self._send(client, due)
        except DeliveryFailed as failed:
            status_code, error, permanent = failed.status_code, failed.reason, failed.permanent
        except TimeoutError:
            error = f"timed out after {self.timeout:g}s"
        except asyncio.CancelledError:
            self._sending[due.receiver] -= 1
            raise
        except Exception as exc:  # one broken delivery must not stop the others
            log.exception("delivery attempt failed unexpectedly", extra={"delivery": due.id})
            error = f"internal error: {type(exc).__name__}"
        duration = time.perf_counter() - started
        DELIVERY_ATTEMPT_DURATION.labels(target=due.target).observe(duration)
        self._sending[due.receiver] -= 1
        self._finished.append(Outcome(due, at, status_code,
                                      scrub(error)[:MAX_ERROR_CHARS] if error else None,
                                      permanent, duration))
        self._wake.set()

    async def _send(self, client: WebhookPoster, due: Due) -> int | None:
        """One attempt; returns the receiver's status code, raises DeliveryFailed."""
        if due.target == SMS:
            await self._send_sms(due)
            return None
        if due.unsubscribed:
            # Queued by a process that had not yet heard of the deletion.
            raise DeliveryFailed("subscription deleted", permanent=True)
        body = due.body
        if due.authorised_personal_data:
            phone = await self.directory.contact_phone(due.case_id)
            body = orjson.dumps(with_contact(orjson.loads(body), phone))
        if not due.url:
            raise DeliveryFailed("no URL to deliver to", permanent=True)
        refusal = await self.destinations.refusal(due.url)
        if refusal:
            raise DeliveryFailed(f"destination not allowed: {refusal} "
                                 "(FQ_WEBHOOK_DENIED_NETWORKS)", permanent=True)
        headers = webhook_headers(due.secrets, message_id(due.event_id), int(time.time()), body)
        return await client.post(due.url, body, headers)

    async def _send_sms(self, due: Due) -> None:
        message = orjson.loads(due.body)
        phone = await self.directory.contact_phone(due.case_id)
        if not phone:
            raise DeliveryFailed("the contact directory has no phone for this case",
                                 permanent=True)
        await self.sms.send(SmsMessage(phone=phone, text=message["text"],
                                       template=message["template"],
                                       reference=message_id(due.event_id)))

    async def _record_finished(self) -> None:
        """Write every finished attempt, its delivery's new state, and the dead-letter records
        of those that gave up, in one transaction."""
        finished, self._finished = self._finished, []
        if not finished:
            return
        now = time.time()
        updates: list[dict[str, Any]] = []
        dead: list[tuple[Outcome, int]] = []
        for outcome in finished:
            attempt = outcome.due.attempts + 1
            row: dict[str, Any] = {
                "b_id": outcome.due.id, "b_attempts": attempt, "b_status": PENDING,
                "b_code": outcome.status_code, "b_error": outcome.error,
                "b_delivered_at": None, "b_next": now}
            if outcome.error is None:
                row.update(b_status=SUCCEEDED, b_delivered_at=datetime.now(UTC))
                DELIVERIES.labels(receiver=outcome.due.receiver, result="succeeded").inc()
            elif outcome.permanent or attempt >= self.settings.delivery_max_attempts:
                row["b_status"] = DEAD
                dead.append((outcome, attempt))
                DELIVERIES.labels(receiver=outcome.due.receiver, result="dead").inc()
            else:
                row["b_next"] = now + next_attempt_delay(
                    attempt, self.settings.delivery_backoff_base_seconds,
                    self.settings.delivery_backoff_max_seconds)
                DELIVERIES.labels(receiver=outcome.due.receiver, result="retry").inc()
            updates.append(row)
        try:
            async with self.sessions() as session, session.begin():
                await session.execute(attempts.insert(), [
                    {"delivery_id": o.due.id, "attempt": o.due.attempts + 1, "at": o.at,
                     "status_code": o.status_code, "error": o.error,
                     "duration_seconds": round(o.duration, 4)} for o in finished])
                conn = await session.connection()
                # Only a delivery still pending moves: one deleted meanwhile stays dead.
                await conn.execute(
                    update(deliveries).where(deliveries.c.id == bindparam("b_id"),
                                             deliveries.c.status == PENDING)
                    .values(attempts=bindparam("b_attempts"), status=bindparam("b_status"),
                            last_status_code=bindparam("b_code"),
                            last_error=bindparam("b_error"),
                            delivered_at=bindparam("b_delivered_at"),
                            next_attempt_at=bindparam("b_next")), updates)
                await add_to_outbox(session, self.outbox, [
                    outbox_row(NOTIFY_DELIVERIES_DLQ, dead_letter(o, n)) for o, n in dead])
        finally:
            self._unrecorded.difference_update(o.due.id for o in finished)
        for outcome, attempt in dead:
            log.warning("delivery gave up", extra={
                "delivery": outcome.due.id, "target": outcome.due.target,
                "case_id": outcome.due.case_id, "attempts": attempt, "error": outcome.error})
        if dead:
            DLQ_MESSAGES.labels(topic=NOTIFY_DELIVERIES_DLQ).inc(len(dead))
            if self.on_dead:
                self.on_dead()


def _in_case_order() -> Any:
    """A hotline's callbacks go out one at a time per case, in the order they were queued
    (the case's steps' order): a callback waits while an earlier one of its case is pending
    (in flight, or waiting for a retry). A dead one no longer holds the others up."""
    earlier = deliveries.alias("earlier")
    return or_(deliveries.c.target != HOTLINE_FEEDBACK, ~exists().where(
        earlier.c.target == HOTLINE_FEEDBACK, earlier.c.case_id == deliveries.c.case_id,
        earlier.c.status == PENDING, earlier.c.id < deliveries.c.id))


def dead_letter(outcome: Outcome, attempt: int) -> DeliveryDeadEvent:
    due = outcome.due
    try:
        payload = orjson.loads(due.body)
    except orjson.JSONDecodeError:
        payload = {"body": due.body.decode(errors="replace")}
    record = DeliveryDead(
        delivery_id=due.id, target=due.target,
        subscription_id=due.receiver if due.target == WEBHOOK else None,
        event_id=due.event_id, case_id=due.case_id, kind=due.kind, attempts=attempt,
        last_status_code=outcome.status_code, reason=outcome.error or "unknown",
        dead_at=datetime.now(UTC), payload=payload)
    return DeliveryDeadEvent.wrap(record, source="notify", subject=due.case_id)
