"""Processed-event keys older than the retention are forgotten, newer ones kept, on the real
database, in chunks."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import MetaData, func, insert, select

from kit import processed
from kit.db import create_engine, session_factory
from kit.processed import ProcessedKeyPruner
from kit.tables import KitTables

pytestmark = [pytest.mark.integration, pytest.mark.both_backends]


async def test_keys_older_than_the_retention_are_forgotten_and_newer_ones_kept(
        database_url: str, unique: str) -> None:
    tables = KitTables.define(MetaData(), f"prune_{unique}")
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    async with engine.begin() as conn:
        await conn.run_sync(tables.processed.metadata.create_all, [tables.processed])
    try:
        now = time.time()
        day = 86400.0
        rows = ([{"consumer": "router", "event_id": f"old-{i}", "processed_at": now - 40 * day}
                 for i in range(25)]
                + [{"consumer": "notify", "event_id": f"new-{i}", "processed_at": now - day}
                   for i in range(7)])
        async with sessions() as session, session.begin():
            await session.execute(insert(tables.processed), rows)
        pruner = ProcessedKeyPruner(engine, sessions, tables.processed, 30 * day)
        processed.PRUNE_CHUNK = 10  # several chunks, the last one short
        try:
            assert await pruner.prune(now - 30 * day) == 25
        finally:
            processed.PRUNE_CHUNK = 5000
        async with sessions() as session:
            left = (await session.execute(select(tables.processed.c.event_id))).scalars().all()
            count = (await session.execute(select(func.count()).select_from(
                tables.processed))).scalar_one()
        assert sorted(left) == sorted(f"new-{i}" for i in range(7)) and count == 7
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(tables.processed.metadata.drop_all, [tables.processed])
        await engine.dispose()
