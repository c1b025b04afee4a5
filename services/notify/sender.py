"""Sends due webhook deliveries: concurrently, each with a timeout, so a slow or dead
endpoint costs only its own retries. Failures are retried with backoff and jitter on a
durable schedule (next_attempt_at), never by sleeping in the consumer."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kit.leader import run_as_leader
from kit.metrics import DELIVERIES
from kit.settings import Settings
from services.notify.domain import next_attempt_delay, webhook_headers
from services.notify.handlers import DEAD, PENDING, SUCCEEDED
from services.notify.store import deliveries, subscriptions

log = logging.getLogger(__name__)
BATCH = 200
CONCURRENCY = 50


class DeliverySender:
    def __init__(self, settings: Settings, engine: AsyncEngine,
                 sessions: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = sessions
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._in_flight: set[int] = set()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        await run_as_leader(self.engine, "fengqiao-notify-sender", self._send_loop,
                            self._stopping)

    async def _send_loop(self) -> None:
        limits = asyncio.Semaphore(CONCURRENCY)
        timeout = httpx.Timeout(self.settings.delivery_timeout_seconds)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            tasks: set[asyncio.Task[None]] = set()
            while not self._stopping.is_set():
                due = await self._due()
                for row in due:
                    self._in_flight.add(row.id)
                    task = asyncio.create_task(self._attempt(client, limits, row))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if len(due) < BATCH:
                    try:
                        await asyncio.wait_for(self._wake.wait(), timeout=0.5)
                    except TimeoutError:
                        pass
                    self._wake.clear()
            if tasks:
                await asyncio.wait(tasks, timeout=self.settings.delivery_timeout_seconds + 1)

    async def _due(self) -> list[Any]:
        async with self.sessions() as session:
            rows = (await session.execute(
                select(deliveries.c.id, deliveries.c.event_id, deliveries.c.body,
                       deliveries.c.attempts, subscriptions.c.url, subscriptions.c.secret)
                .join(subscriptions, subscriptions.c.id == deliveries.c.subscription_id)
                .where(deliveries.c.status == PENDING,
                       deliveries.c.next_attempt_at <= time.time())
                .order_by(deliveries.c.next_attempt_at)
                .limit(BATCH + len(self._in_flight)))).all()
        return [r for r in rows if r.id not in self._in_flight][:BATCH]

    async def _attempt(self, client: httpx.AsyncClient, limits: asyncio.Semaphore,
                       row: Row[Any]) -> None:
        try:
            async with limits:
                status_code, error = await self._post(client, row)
            await self._record(row, status_code, error)
        finally:
            self._in_flight.discard(row.id)

    async def _post(self, client: httpx.AsyncClient, row: Row[Any]
                    ) -> tuple[int | None, str | None]:
        headers = webhook_headers(row.secret, f"msg_{row.event_id}", int(time.time()), row.body)
        try:
            response = await client.post(row.url, content=row.body, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}"

    async def _record(self, row: Row[Any], status_code: int | None, error: str | None) -> None:
        attempts = row.attempts + 1
        values: dict[str, object] = {"attempts": attempts, "last_status_code": status_code,
                                     "last_error": error}
        if error is None:
            values.update(status=SUCCEEDED, delivered_at=datetime.now(UTC))
            DELIVERIES.labels(result="succeeded").inc()
        elif attempts >= self.settings.delivery_max_attempts:
            values.update(status=DEAD)
            DELIVERIES.labels(result="dead").inc()
            log.warning("delivery gave up", extra={"delivery": row.id, "error": error})
        else:
            values.update(next_attempt_at=time.time() + next_attempt_delay(
                attempts, self.settings.delivery_backoff_base_seconds,
                self.settings.delivery_backoff_max_seconds))
            DELIVERIES.labels(result="retry").inc()
        async with self.sessions() as session, session.begin():
            await session.execute(update(deliveries).where(deliveries.c.id == row.id)
                                  .values(**values))
