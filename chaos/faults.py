"""The faults: which, when, and how each is injected and undone. Every kind is used at least
once when there are enough faults; the rest are drawn at random (PostgreSQL restarts are
capped: the machine's cluster may be shared)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from chaos.cluster import Cluster, Instance, restart_postgresql

log = logging.getLogger("chaos")

KILL = "sigkill {}"
REBALANCE = "rebalance {}"
BROKER_RESTART = "broker restart"
POSTGRES_RESTART = "postgresql restart"
KINDS: tuple[str, ...] = (
    KILL.format("intake"), KILL.format("router"), KILL.format("mediation"),
    KILL.format("notify"), BROKER_RESTART, POSTGRES_RESTART,
    REBALANCE.format("router"), REBALANCE.format("mediation"), REBALANCE.format("notify"))
# On the embedded default: no PostgreSQL to restart, one process per service to rebalance.
SQLITE_KINDS: tuple[str, ...] = tuple(
    k for k in KINDS if k != POSTGRES_RESTART and not k.startswith("rebalance"))


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the stream starts
    kind: str


def plan(count: int, window: float, rng: random.Random, max_postgres: int,
         kinds: tuple[str, ...] = KINDS, min_gap: float = 2.0) -> list[Fault]:
    """`count` faults spread over `window` seconds, every kind at least once if possible."""
    allowed = [k for k in kinds if k != POSTGRES_RESTART or max_postgres > 0]
    chosen = list(allowed[:count])
    while len(chosen) < count:
        kind = rng.choice(allowed)
        if kind == POSTGRES_RESTART and chosen.count(POSTGRES_RESTART) >= max_postgres:
            continue
        chosen.append(kind)
    rng.shuffle(chosen)
    # Evenly spaced slots with jitter: random moments, never all at once.
    slot = window / max(count, 1)
    return [Fault(at=max(0.5, i * slot + rng.uniform(0, max(slot - min_gap, 0.1))), kind=kind)
            for i, kind in enumerate(chosen)]


@dataclass
class Injector:
    """Injects planned faults into the cluster, each undone after a random while."""

    cluster: Cluster
    engine: AsyncEngine
    rng: random.Random
    rebalance_down: tuple[float, float] = (8.0, 12.0)  # beyond the 6 s session timeout
    injected: Counter[str] = field(default_factory=Counter)
    timeline: list[tuple[float, str]] = field(default_factory=list)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _started: float = field(default_factory=time.monotonic)

    async def run(self, faults: list[Fault]) -> None:
        self._started = time.monotonic()
        await asyncio.gather(*(self._at(fault) for fault in faults))

    async def _at(self, fault: Fault) -> None:
        await asyncio.sleep(max(0.0, self._started + fault.at - time.monotonic()))
        target = fault.kind.split(" ", 1)[-1] if fault.kind.startswith(("sigkill", "rebalance")) \
            else fault.kind
        # One fault at a time per target (the broker, the database, a service); different
        # targets may overlap, as they would in real life.
        async with self._locks.setdefault(target, asyncio.Lock()):
            self._note(fault.kind)
            await self._inject(fault.kind)

    def _note(self, what: str) -> None:
        self.injected[what] += 1
        elapsed = time.monotonic() - self._started
        self.timeline.append((elapsed, what))
        log.info("fault at %5.1fs: %s", elapsed, what)

    async def _inject(self, kind: str) -> None:
        if kind == BROKER_RESTART:
            await self.cluster.stop_broker()
            await asyncio.sleep(self.rng.uniform(1.0, 5.0))
            await self.cluster.start_broker()
        elif kind == POSTGRES_RESTART:
            await asyncio.to_thread(restart_postgresql)
            await self.cluster.database_answers(self.engine)
        elif kind.startswith("sigkill"):
            instances = self.cluster.of(kind.split(" ", 1)[1])
            await self._kill_and_restart(instances, (0.5, 3.0))
        elif kind.startswith("rebalance"):
            instances = self.cluster.of(kind.split(" ", 1)[1])
            await self._kill_and_restart([self.rng.choice(instances)], self.rebalance_down)
        else:
            raise ValueError(kind)

    async def _kill_and_restart(self, instances: list[Instance],
                                down: tuple[float, float]) -> None:
        for instance in instances:
            self.cluster.kill(instance)
        await asyncio.sleep(self.rng.uniform(*down))
        for instance in instances:
            self.cluster.restart(instance)
        await self.cluster.wait_ready(instances)
