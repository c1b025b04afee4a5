"""A service process: its database, producer, outbox relay, consumer loops and background
jobs, started and stopped together. Each service's main.py builds one and adds its parts."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine

from kit import liveness, migrate
from kit.auth import KeyStore, auth_metadata
from kit.bus import Producer
from kit.consumer import ConsumerLoop, Subscription
from kit.db import create_engine, ping, session_factory
from kit.errors import database_unavailable
from kit.lag import GroupLagExporter
from kit.liveness import Heartbeats
from kit.outbox import OutboxRelay
from kit.processed import ProcessedKeyPruner
from kit.settings import Settings
from kit.tables import KitTables

log = logging.getLogger(__name__)


class Runtime:
    def __init__(self, settings: Settings, metadata: MetaData, tables: KitTables) -> None:
        self.settings = settings
        self.service = settings.service
        self.metadata = metadata
        self.tables = tables
        self.engine: AsyncEngine = create_engine(settings.effective_database_url())
        self.sessions = session_factory(self.engine)
        auth_url = settings.effective_auth_database_url()
        self.auth_engine = (self.engine if auth_url == settings.effective_database_url()
                            else create_engine(auth_url, pool_size=2))
        self.keys = KeyStore(self.auth_engine, settings.dev_api_key)
        self.producer = Producer(settings.kafka_bootstrap, client_id=f"fengqiao-{self.service}")
        self.relay = OutboxRelay(service=self.service, engine=self.engine,
                                 sessions=self.sessions, outbox=tables.outbox,
                                 producer=self.producer, batch=settings.outbox_batch,
                                 poll_seconds=settings.outbox_poll_seconds,
                                 published=tables.published,
                                 retention_seconds=settings.outbox_retention_seconds)
        self.pruner = ProcessedKeyPruner(self.engine, self.sessions, tables.processed,
                                         settings.processed_retention_days * 86400)
        self.lag = GroupLagExporter(settings.kafka_bootstrap,
                                    every=settings.consumer_group_lag_interval_seconds)
        self.heartbeats = Heartbeats(self.service)
        self._beating: set[str] = {"outbox-relay"}
        self.producer_ready = asyncio.Event()
        self.broker_reachable = False
        self.loops: list[ConsumerLoop] = []
        self._jobs: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stoppers: list[Callable[[], None]] = []
        self._stopping = False

    def consume(self, group: str, subscriptions: Sequence[Subscription],
                after_commit: Callable[[], None] | None = None) -> ConsumerLoop:
        """Declare a consumer loop; committed batches wake the outbox relay (and `after_commit`)."""
        relay_wake = self.relay.wake

        def woken() -> None:
            relay_wake()
            if after_commit:
                after_commit()

        loop = ConsumerLoop(
            bootstrap=self.settings.kafka_bootstrap, group=group, subscriptions=subscriptions,
            sessions=self.sessions, processed=self.tables.processed, producer=self.producer,
            max_records=self.settings.consumer_max_records, poll_ms=self.settings.consumer_poll_ms,
            session_timeout_ms=self.settings.consumer_session_timeout_ms,
            max_message_bytes=self.settings.consumer_max_message_bytes,
            after_commit=woken)
        self.loops.append(loop)
        self._beating.add(f"consumer-{group}")
        return loop

    def job(self, name: str, run: Callable[[], Awaitable[None]],
            stop: Callable[[], None] | None = None, beats: bool = False) -> None:
        """Declare a background job, restarted if it crashes; `stop` asks it to finish.
        `beats`: the job calls kit.liveness.beat() as it makes progress, and /healthz fails
        when it stops doing so."""
        self._jobs.append((name, run))
        if stop:
            self._stoppers.append(stop)
        if beats:
            self._beating.add(name)

    async def start(self) -> None:
        await self._migrate()
        self._beat_when_the_relay_publishes()
        for activity in self._beating:
            self.heartbeats.expect(activity)
        self._spawn("producer", self._start_producer)
        self._spawn("outbox-relay", self._after_producer(self.relay.run))
        self._spawn("outbox-gauges", self.relay.watch_backlog)
        for loop in self.loops:
            self._spawn(f"consumer-{loop.group}", self._after_producer(loop.run))
        if self.loops:
            self._spawn("processed-keys-pruner", self.pruner.run)
        for name, run in self._jobs:
            self._spawn(name, run)
        self._spawn("consumer-group-lag", self.lag.run)

    def stuck(self) -> dict[str, float]:
        """Activities that made no progress for longer than the liveness bound, with the
        seconds since they last did."""
        return self.heartbeats.stuck(self.settings.liveness_bound_seconds)

    def _beat_when_the_relay_publishes(self) -> None:
        """Each publish_once that returns, with rows or none, is the relay's progress (its
        loop calls it at least every poll). Wrapped here, since OutboxRelay knows nothing
        of liveness."""
        publish_once = self.relay.publish_once

        async def publish_and_beat() -> int:
            published = await publish_once()
            liveness.beat()
            return published

        self.relay.publish_once = publish_and_beat  # type: ignore[method-assign]

    async def _migrate(self) -> None:
        """Bring the tables up to date, waiting for a database that is (re)starting: a
        service started during a database restart should start late, not exit."""
        deadline = time.monotonic() + self.settings.startup_database_wait_seconds
        backoff = 0.5
        while True:
            try:
                await migrate.upgrade(self.engine, self.service, self.metadata)
                await migrate.upgrade(self.auth_engine, "auth", auth_metadata)
                return
            except Exception as exc:
                if not database_unavailable(exc) or time.monotonic() >= deadline:
                    raise
                log.warning("database not reachable yet; retrying",
                            extra={"error": repr(exc)[:300]})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def stop(self) -> None:
        self._stopping = True
        for loop in self.loops:
            loop.stop()
        self.relay.stop()
        self.pruner.stop()
        self.lag.stop()
        for stop in self._stoppers:
            stop()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=10)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.producer.stop()
        await self.engine.dispose()
        if self.auth_engine is not self.engine:
            await self.auth_engine.dispose()

    async def readiness(self) -> dict[str, bool]:
        return {"database": await ping(self.engine),
                "broker": self.producer_ready.is_set() and self.broker_reachable}

    def _after_producer(self, run: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        async def wrapped() -> None:
            await self.producer_ready.wait()
            await run()
        return wrapped

    async def _start_producer(self) -> None:
        # The broker may be down at start: keep serving HTTP (intake writes to its outbox)
        # and connect when it comes back.
        delay = 0.5
        while not self._stopping:
            try:
                await self.producer.start()
                break
            except Exception as exc:  # noqa: BLE001 - any start failure means "try again"
                log.warning("broker not reachable yet", extra={"error": repr(exc)[:200]})
                self._excuse_the_broker_bound()
                await self.producer.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.broker_reachable = True
        self.producer_ready.set()
        while not self._stopping:
            self.broker_reachable = await self.producer.reachable()
            if not self.broker_reachable:
                self._excuse_the_broker_bound()
            await asyncio.sleep(5.0)

    def _excuse_the_broker_bound(self) -> None:
        """While the broker is unreachable, the relay and the consumers cannot progress and a
        restart would not help: intake, say, keeps taking reports into its outbox. /readyz
        reports the broker; /healthz keeps to hangs."""
        self.heartbeats.excuse([name for name in self._beating
                                if name == "outbox-relay" or name.startswith("consumer-")])

    def _spawn(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        async def supervised() -> None:
            self.heartbeats.bind(name)  # this task's (and its children's) kit.liveness.beat()
            while not self._stopping:
                try:
                    await run()
                    return
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if self._stopping or (task is not None and task.cancelling()):
                        raise
                    # Not us: a client library's own task cancelled under it (aiokafka does
                    # that when the broker goes away). A job that ends so would never return.
                    log.error("background job was cancelled from inside; restarting",
                              extra={"job": name})
                    await asyncio.sleep(1.0)
                except Exception:
                    log.exception("background job crashed; restarting", extra={"job": name})
                    await asyncio.sleep(1.0)
        self._tasks.append(asyncio.create_task(supervised(), name=name))
