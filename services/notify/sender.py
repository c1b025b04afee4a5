"""Sends due deliveries (webhooks, hotline feedback, SMS) concurrently, each under a timeout
and with at most a few in flight per destination, so a slow or dead endpoint costs only its
own retries. Failures are retried with backoff and jitter on a durable schedule
(next_attempt_at), never by sleeping in the consumer; after the last attempt a delivery is
dead and a record with the reason goes to notify.deliveries.v1.dlq through the outbox.

Every notify process sends, each for its own destinations: a destination (a subscription,
one hotline integration's endpoint or callback URL, the SMS gateway) hashes to one of
`delivery_sender_shares` shares, and each process holds a fair part of the shares on
PostgreSQL advisory locks (kit.leader.run_sharing). So a destination's in-flight cap is kept
by one process, in memory; a share moves to another process only once nothing of it is in
flight or unrecorded. If a process dies mid-attempt, the delivery is still pending and the
process that takes its share sends it again (at least once; receivers deduplicate on
webhook-id). On SQLite one process holds every share."""

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
from sqlalchemy import (
    String,
    Table,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from contracts.api_notify import DeliveryDead, DeliveryDeadEvent
from contracts.topics import NOTIFY_DELIVERIES_DLQ
from kit import liveness
from kit.leader import Shares, run_sharing
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
    endpoints,
    subscriptions,
)

log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class Due:
    """A pending delivery whose time has come, with what sending it needs."""

    id: int
    target: str
    receiver: str  # subscription id, or the built-in target's name (the metrics' label)
    event_id: str
    case_id: str
    kind: str
    body: bytes
    attempts: int
    url: str | None
    secrets: tuple[str, ...]
    authorised_personal_data: bool
    unsubscribed: bool = False
    # A callback for an integration's registered endpoint, which was deleted since.
    endpoint_deleted: bool = False
    share: int = 0  # of the destination (kit.leader.Shares)
    # Where it goes, for the in-flight cap and the shares (`DESTINATION`): a subscription,
    # one hotline integration's endpoint or callback URL, or the SMS gateway.
    destination: str = ""


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
        self._sending: Counter[str] = Counter()  # destination → attempts in flight
        self._unrecorded: set[int] = set()  # in flight, or finished and not yet recorded
        self._share_unrecorded: Counter[int] = Counter()  # the same, by receiver share
        self._finished: list[Outcome] = []

    def wake(self) -> None:
        """Look for due deliveries now (new ones were committed, or one was redelivered)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        try:
            await run_sharing(self.engine, "fengqiao-notify-sender",
                              self.settings.delivery_sender_shares, self._send_loop,
                              self._stopping, busy=self._share_busy)
        finally:
            await self.sms.aclose()
            await self.directory.aclose()

    def _share_busy(self, share: int) -> bool:
        return self._share_unrecorded[share] > 0

    async def _send_loop(self, shares: Shares) -> None:
        self._sending.clear()
        self._unrecorded.clear()
        self._share_unrecorded.clear()
        self._finished = []
        tasks: set[asyncio.Task[None]] = set()
        async with WebhookPoster(self.timeout, self.settings.delivery_concurrency) as client:
            try:
                while not self._stopping.is_set():
                    self._wake.clear()
                    await self._record_finished()
                    limit = self._free_slots() if shares.owned else 0
                    due = await self._due(limit, shares) if limit > 0 else []
                    started = self._dispatch(client, tasks, due, shares)
                    liveness.beat()
                    if not (started and len(due) == limit):
                        await self._sleep()  # until an attempt ends, news, or the poll
                if tasks:
                    await asyncio.wait(tasks, timeout=self.timeout + 1)
                await self._record_finished()
            finally:
                # Unfinished attempts stay pending: sent again by whoever holds their share next.
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    def _free_slots(self) -> int:
        return self.settings.delivery_concurrency - sum(self._sending.values())

    async def _due(self, limit: int, shares: Shares) -> list[Due]:
        cap = self.settings.delivery_max_in_flight_per_receiver
        busy = [r for r, n in self._sending.items() if n >= cap]
        share = destination_share(self.engine.dialect.name, shares.count)
        query = (
            select(share.label("share"), DESTINATION.label("destination"),
                   deliveries.c.id, deliveries.c.target, deliveries.c.subscription_id,
                   deliveries.c.event_id, deliveries.c.case_id, deliveries.c.kind,
                   deliveries.c.body, deliveries.c.attempts, deliveries.c.url,
                   deliveries.c.endpoint_key_id,
                   subscriptions.c.url.label("subscription_url"), subscriptions.c.secret,
                   subscriptions.c.previous_secret, subscriptions.c.previous_secret_expires_at,
                   subscriptions.c.authorised_personal_data, subscriptions.c.deleted_at,
                   endpoints.c.key_id.label("endpoint_found"),
                   endpoints.c.url.label("endpoint_url"),
                   endpoints.c.secret.label("endpoint_secret"),
                   endpoints.c.previous_secret.label("endpoint_previous_secret"),
                   endpoints.c.previous_secret_expires_at.label("endpoint_previous_expires_at"))
            .outerjoin(subscriptions, and_(deliveries.c.target == WEBHOOK,
                                           subscriptions.c.id == deliveries.c.subscription_id))
            # An integration's endpoint as it is now: its URL and secrets when sending.
            .outerjoin(endpoints, endpoints.c.key_id == deliveries.c.endpoint_key_id)
            .where(deliveries.c.status == PENDING, deliveries.c.next_attempt_at <= time.time(),
                   or_(deliveries.c.target != WEBHOOK, subscriptions.c.id.is_not(None)))
            .order_by(deliveries.c.next_attempt_at)
            .limit(limit))
        query = query.where(_in_case_order())
        if self._unrecorded:
            query = query.where(deliveries.c.id.not_in(self._unrecorded))
        if busy:
            # Destinations at their cap are left out, so their backlog cannot fill the batch.
            query = query.where(DESTINATION.not_in(busy))
        if not shares.all_owned:
            query = query.where(share.in_(sorted(shares.owned)))
        async with self.sessions() as session:
            rows = (await session.execute(query)).all()
        now = datetime.now(UTC)
        return [self._due_from(row, now) for row in rows]

    def _due_from(self, row: Any, now: datetime) -> Due:
        if row.target == WEBHOOK:
            keys = tuple(signing_secrets(row.secret, row.previous_secret,
                                         row.previous_secret_expires_at, now))
            url, authorised = row.subscription_url, bool(row.authorised_personal_data)
        elif row.endpoint_key_id is not None:
            # The integration's endpoint signs with its own secrets (two during a rotation).
            keys = tuple(signing_secrets(row.endpoint_secret, row.endpoint_previous_secret,
                                         row.endpoint_previous_expires_at, now)) \
                if row.endpoint_found else ()
            url, authorised = row.endpoint_url, False
        else:
            # Each hotline integration signs with its own secrets (two during a rotation).
            keys = self.settings.hotline_signing_secrets(row.url) \
                if row.target == HOTLINE_FEEDBACK else ()
            url, authorised = row.url, False
        return Due(row.id, row.target, row.subscription_id, row.event_id, row.case_id,
                   row.kind, row.body, row.attempts, url, keys, authorised,
                   unsubscribed=row.target == WEBHOOK and row.deleted_at is not None,
                   endpoint_deleted=row.endpoint_key_id is not None and not row.endpoint_found,
                   share=row.share, destination=row.destination)

    def _dispatch(self, client: WebhookPoster, tasks: set[asyncio.Task[None]],
                  due: list[Due], shares: Shares) -> int:
        """Start attempts within the caps; returns how many started."""
        cap = self.settings.delivery_max_in_flight_per_receiver
        started = 0
        for item in due:
            if self._sending[item.destination] >= cap or self._free_slots() <= 0:
                continue
            if item.share not in shares.owned:
                continue  # being handed over since the query began: its new holder sends it
            self._sending[item.destination] += 1
            self._unrecorded.add(item.id)
            self._share_unrecorded[item.share] += 1
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
            self._sending[due.destination] -= 1
            raise
        except Exception as exc:  # one broken delivery must not stop the others
            log.exception("delivery attempt failed unexpectedly", extra={"delivery": due.id})
            error = f"internal error: {type(exc).__name__}"
        duration = time.perf_counter() - started
        DELIVERY_ATTEMPT_DURATION.labels(target=due.target).observe(duration)
        self._sending[due.destination] -= 1
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
        if due.endpoint_deleted:
            raise DeliveryFailed("the integration's callback endpoint was deleted",
                                 permanent=True)
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
                "b_id": outcome.due.id, "b_url": outcome.due.url,
                "b_attempts": attempt, "b_status": PENDING,
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
                            # Where it went, for the delivery log (an endpoint may move).
                            url=func.coalesce(bindparam("b_url", type_=String), deliveries.c.url),
                            last_status_code=bindparam("b_code"),
                            last_error=bindparam("b_error"),
                            delivered_at=bindparam("b_delivered_at"),
                            next_attempt_at=bindparam("b_next")), updates)
                await add_to_outbox(session, self.outbox, [
                    outbox_row(NOTIFY_DELIVERIES_DLQ, dead_letter(o, n)) for o, n in dead])
        finally:
            self._unrecorded.difference_update(o.due.id for o in finished)
            self._share_unrecorded.subtract(o.due.share for o in finished)
        for outcome, attempt in dead:
            log.warning("delivery gave up", extra={
                "delivery": outcome.due.id, "target": outcome.due.target,
                "case_id": outcome.due.case_id, "attempts": attempt, "error": outcome.error})
        if dead:
            DLQ_MESSAGES.labels(topic=NOTIFY_DELIVERIES_DLQ).inc(len(dead))
            if self.on_dead:
                self.on_dead()


def _destination() -> Any:
    """Where a delivery goes, as one string: what the in-flight cap counts and the shares
    hash. A subscription is its id; a hotline callback is its integration's registered
    endpoint (`endpoint:<key id>`) or the callback URL its order gave (`url:<url>`), so each
    hotline platform has its own cap and one that is slow or gone cannot take the slots of
    another; the SMS gateway is `sms`. A case's callbacks all go to one destination (its
    order's), and their order is kept by the due query itself (`_in_case_order`)."""
    return case(
        (deliveries.c.endpoint_key_id.is_not(None),
         literal("endpoint:", String).concat(deliveries.c.endpoint_key_id)),
        (and_(deliveries.c.target == HOTLINE_FEEDBACK, deliveries.c.url.is_not(None)),
         literal("url:", String).concat(deliveries.c.url)),
        else_=deliveries.c.subscription_id)


DESTINATION = _destination()


def destination_share(dialect: str, count: int) -> Any:
    """The share (0 … count - 1) a delivery's destination falls in: a stable hash of it.
    PostgreSQL's own hashtext, the function its advisory locks here are keyed with; on
    SQLite one process owns every share, so all are 0."""
    if dialect != "postgresql" or count == 1:
        return literal(0)
    return func.mod(func.hashtext(DESTINATION).op("&")(0x7FFFFFFF), count)


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
