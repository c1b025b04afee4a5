"""The workbench's own tables: staff accounts and their sessions. No case data: cases are
read and moved through mediation's and intake's APIs, with each person's own key."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import JSON, Column, Float, MetaData, String, Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

metadata = MetaData()

users = Table(
    "workbench_users", metadata,
    Column("username", String(64), primary_key=True),
    Column("display_name", String(128), nullable=False),
    Column("password_hash", String(256), nullable=False),
    Column("role", String(16), nullable=False),
    Column("departments", JSON, nullable=False),
    Column("jurisdictions", JSON, nullable=False),
    # The API key acting for this person (kit/auth.py), and the nonce its token is derived
    # from with the workbench secret: the token itself is stored nowhere.
    Column("key_id", String(32), nullable=False),
    Column("key_nonce", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("disabled_at", Float, nullable=True),
)

sessions = Table(
    "workbench_sessions", metadata,
    Column("session_hash", String(64), primary_key=True),  # SHA-256 of the cookie's value
    Column("username", String(64), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
)


async def get_user(engine: AsyncEngine, username: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(users).where(users.c.username == username))).first()
    return dict(row._mapping) if row else None


async def list_users(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(users).order_by(users.c.username))).all()
    return [dict(r._mapping) for r in rows]


async def insert_user(engine: AsyncEngine, **values: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(users.insert().values(**values))


async def update_user(engine: AsyncEngine, username: str, **values: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(users).where(users.c.username == username).values(**values))


async def new_session(engine: AsyncEngine, session_hash: str, username: str,
                      csrf_token: str) -> None:
    now = time.time()
    async with engine.begin() as conn:
        await conn.execute(sessions.insert().values(
            session_hash=session_hash, username=username, csrf_token=csrf_token,
            created_at=now, last_seen=now))


async def get_session(engine: AsyncEngine, session_hash: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(sessions).where(
            sessions.c.session_hash == session_hash))).first()
    return dict(row._mapping) if row else None


async def touch_session(engine: AsyncEngine, session_hash: str, at: float) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(sessions).where(
            sessions.c.session_hash == session_hash).values(last_seen=at))


async def end_session(engine: AsyncEngine, session_hash: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(sessions).where(sessions.c.session_hash == session_hash))


async def end_sessions_of(engine: AsyncEngine, username: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(sessions).where(sessions.c.username == username))


async def prune_sessions(engine: AsyncEngine, idle_seconds: float) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(sessions).where(
            sessions.c.last_seen < time.time() - idle_seconds))
