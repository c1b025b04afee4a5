"""Async database engines and sessions for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import DateTime, Dialect, Table, TypeDecorator, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, PendingRollbackError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger(__name__)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def insert_for(session: AsyncSession, table: Table) -> Any:
    """An INSERT into `table` in the session's backend's own dialect (PostgreSQL's or
    SQLite's), which has what a plain INSERT has not: ON CONFLICT DO NOTHING / DO UPDATE."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


# orjson for JSON columns: the stdlib encoder was a visible share of the router's hot path.
_JSON = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An engine tuned for the backend: WAL and a busy timeout on SQLite, a pool on PostgreSQL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **_JSON)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size,
                               pool_pre_ping=True, pool_recycle=1800, **_JSON)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> bool:
    """True when the database answers a trivial query."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except (OperationalError, DBAPIError, OSError):
        return False


@asynccontextmanager
async def advisory_lock(conn: AsyncConnection, name: str) -> AsyncIterator[bool]:
    """Hold a PostgreSQL session advisory lock named `name` while the block runs.

    Yields True when this connection holds the lock. On SQLite there is one writer per
    file anyway, so the lock is always granted.
    """
    if conn.dialect.name != "postgresql":
        yield True
        return
    got = (await conn.execute(text("SELECT pg_try_advisory_lock(hashtext(:n))"), {"n": name})
           ).scalar_one()
    try:
        yield bool(got)
    finally:
        if got and not conn.invalidated:
            try:
                await conn.execute(text("SELECT pg_advisory_unlock(hashtext(:n))"),
                                   {"n": name})
            except (DBAPIError, PendingRollbackError):
                # The connection broke (a database restart). Close it rather than return it
                # to the pool: the lock goes with its session. Raising here would hide why
                # the block ended.
                log.warning("advisory lock not released: closing its connection",
                            extra={"lock": name})
                await conn.invalidate()


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp on every backend: stored in UTC, read back aware.
    (SQLite keeps no offset; without this a +08:00 time would come back as naive.)"""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: fengqiao stores only timezone-aware times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect
                             ) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
