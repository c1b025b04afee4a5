"""kit.leader.run_sharing against the real database: replicas hold disjoint fair parts of a
job's shares, a share in use is handed over only once idle, and the shares of a replica that
stops are taken by the others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kit.db import create_engine
from kit.leader import Shares, run_sharing
from tests.infra import eventually

pytestmark = pytest.mark.integration

COUNT = 16
CHECK = 0.2


@dataclass
class Replica:
    shares: Shares | None = None
    busy: set[int] = field(default_factory=set)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def owned(self) -> frozenset[int]:
        return self.shares.owned if self.shares else frozenset()

    @property
    def held(self) -> frozenset[int]:
        return self.owned | self.shares.releasing if self.shares else frozenset()


@asynccontextmanager
async def replica(database_url: str, name: str) -> AsyncIterator[Replica]:
    """One replica of a job that only holds its shares until stopped."""
    engine = create_engine(database_url)
    this = Replica()

    async def job(shares: Shares) -> None:
        this.shares = shares
        await this.stopping.wait()

    task = asyncio.create_task(run_sharing(engine, name, COUNT, job, this.stopping,
                                           busy=lambda s: s in this.busy, check_seconds=CHECK))
    try:
        yield this
    finally:
        this.stopping.set()
        await asyncio.wait_for(task, 10)
        await engine.dispose()


def fair_and_disjoint(replicas: list[Replica]) -> bool:
    parts = [r.held for r in replicas]
    fair = -(-COUNT // len(replicas))
    return (sum(len(p) for p in parts) == COUNT and frozenset().union(*parts) == set(range(COUNT))
            and all(len(p) <= fair for p in parts))


async def test_replicas_hold_disjoint_fair_parts_and_take_over_a_stopped_one(
        database_url: str, unique: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("shares are PostgreSQL advisory locks; on SQLite one replica holds all")
    name = f"test-shares-{unique}"
    async with replica(database_url, name) as one, replica(database_url, name) as two:
        async with replica(database_url, name) as three:
            replicas = [one, two, three]

            async def parts() -> list[Replica]:
                return replicas
            await eventually(parts, fair_and_disjoint, within=15)
            assert all(r.owned for r in replicas)
        # The third stopped (its locks went with it): the other two share everything.
        await eventually(parts, lambda _: fair_and_disjoint([one, two]), within=15)
        assert len(one.owned) == len(two.owned) == COUNT // 2


async def test_a_share_in_use_moves_only_once_idle(database_url: str, unique: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("shares are PostgreSQL advisory locks; on SQLite one replica holds all")
    name = f"test-shares-{unique}"
    async with replica(database_url, name) as first:
        async def held() -> frozenset[int]:
            return first.held
        await eventually(held, lambda h: len(h) == COUNT, within=15)
        first.busy = set(range(COUNT))
        async with replica(database_url, name) as second:
            await asyncio.sleep(CHECK * 10)
            # Half is no longer the first's to start work for, but it is still held.
            assert first.shares is not None and len(first.owned) == COUNT // 2
            assert len(first.shares.releasing) == COUNT // 2
            assert second.owned == frozenset()
            first.busy = set()

            async def both() -> tuple[frozenset[int], frozenset[int]]:
                return first.held, second.held
            await eventually(both, lambda h: len(h[0]) == len(h[1]) == COUNT // 2, within=15)
            assert first.held.isdisjoint(second.held)


async def test_on_sqlite_one_replica_holds_every_share(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/shares.db")
    this = Replica()

    async def job(shares: Shares) -> None:
        this.shares = shares
        await this.stopping.wait()

    task = asyncio.create_task(run_sharing(engine, "test-shares", COUNT, job, this.stopping,
                                           busy=lambda s: False, check_seconds=CHECK))
    try:
        async def owned() -> frozenset[int]:
            return this.owned
        await eventually(owned, lambda o: o == set(range(COUNT)), within=5)
    finally:
        this.stopping.set()
        await asyncio.wait_for(task, 10)
        await engine.dispose()
