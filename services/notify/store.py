"""Notify's tables: webhook subscriptions, hotline integrations' callback endpoints, the
durable schedule and log of every delivery (webhooks, hotline feedback, SMS) with each
attempt, and the few facts about each case that notify needs to filter events and to answer
the hotline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from kit.db import UtcDateTime, insert_for
from kit.tables import KitTables

# Delivery targets, and the subscription_id of deliveries that go to a built-in receiver
# rather than to a subscription (so the one-delivery-per-receiver-and-event rule holds).
WEBHOOK, HOTLINE_FEEDBACK, SMS = "webhook", "hotline_feedback", "sms"
PENDING, SUCCEEDED, DEAD = "pending", "succeeded", "dead"


class NotifyBase(SQLModel):
    metadata = MetaData()


def _json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False,
                                                        server_default=text("'[]'")))


class Subscription(NotifyBase, table=True):
    __tablename__ = "notify_subscriptions"

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=128)
    url: str = Field(max_length=2048)
    secret: str = Field(max_length=128)
    kinds: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    departments: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    tiers: list[str] = _json_list()
    risks: list[str] = _json_list()
    categories: list[str] = _json_list()
    jurisdictions: list[str] = _json_list()
    channels: list[str] = _json_list()
    authorised_personal_data: bool = Field(default=False, sa_column=Column(
        Boolean, nullable=False, server_default=false()))
    # The secret before the last rotation keeps signing until previous_secret_expires_at.
    previous_secret: str | None = Field(default=None, max_length=128)
    previous_secret_expires_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime, nullable=True))
    owner: str | None = Field(default=None, max_length=32,
                              description="key_id of the API key that created it")
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    deleted_at: datetime | None = Field(default=None,
                                        sa_column=Column(UtcDateTime, nullable=True))


class HotlineEndpoint(NotifyBase, table=True):
    """A hotline integration's callback endpoint, one per API key (the key that posts the
    orders): where the callbacks of its orders without callback_url go."""

    __tablename__ = "notify_hotline_endpoints"

    key_id: str = Field(primary_key=True, max_length=32)
    url: str = Field(max_length=2048)
    secret: str = Field(max_length=128)
    kinds: list[str] = _json_list()  # the HotlineStep values wanted
    previous_secret: str | None = Field(default=None, max_length=128)
    previous_secret_expires_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime, nullable=True))
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class DeliveryRecord(NotifyBase, table=True):
    """One message to one receiver: pending until it succeeds or its last attempt fails."""

    __tablename__ = "notify_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", name="uq_notify_delivery_once"),
        Index("ix_notify_deliveries_due", "status", "next_attempt_at"),
        # The delivery log's `event_id=` filter; the unique constraint leads with the
        # subscription and so cannot serve it.
        Index("ix_notify_deliveries_event_id", "event_id"),
    )

    id: int | None = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True))
    target: str = Field(default=WEBHOOK, max_length=16,
                        sa_column_kwargs={"server_default": WEBHOOK})
    # The subscription, or for hotline feedback and SMS the target's name.
    subscription_id: str = Field(max_length=32, index=True)
    url: str | None = Field(default=None, max_length=2048,
                            description="Hotline feedback: the work order's callback_url; "
                            "else where the last attempt went")
    # Hotline feedback to an integration's registered endpoint (the order had no
    # callback_url): its key; the endpoint's URL and secrets are read at each attempt.
    endpoint_key_id: str | None = Field(default=None, max_length=32)
    event_id: str = Field(max_length=64)
    case_id: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=64)
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = Field(max_length=16)
    attempts: int = 0
    next_attempt_at: float = Field(sa_column=Column(Float, nullable=False))
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    delivered_at: datetime | None = Field(default=None,
                                          sa_column=Column(UtcDateTime, nullable=True))


class DeliveryAttempt(NotifyBase, table=True):
    """Every attempt of every delivery, kept across redeliveries."""

    __tablename__ = "notify_delivery_attempts"

    id: int | None = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True))
    delivery_id: int = Field(sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"),
                                              nullable=False, index=True))
    attempt: int
    at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    status_code: int | None = None
    error: str | None = None
    duration_seconds: float


class CaseRecord(NotifyBase, table=True):
    """What notify knows about a case: from case.reported (callback, order number, whether
    the citizen left a phone, masked), case.routed (the filters' facts) and case.lifecycle
    (the outcome the hotline is told)."""

    __tablename__ = "notify_cases"

    case_id: str = Field(primary_key=True, max_length=64)
    channel: str | None = Field(default=None, max_length=32)
    external_id: str | None = Field(default=None, max_length=128)
    callback_url: str | None = Field(default=None, max_length=2048)
    integration_key_id: str | None = Field(default=None, max_length=32)
    reporter_phone_masked: str | None = Field(default=None, max_length=32)
    category: str | None = Field(default=None, max_length=32)
    risk: str | None = Field(default=None, max_length=16)
    tier: str | None = Field(default=None, max_length=16)
    lead_department: str | None = Field(default=None, max_length=32)
    cooperating_departments: list[str] = _json_list()
    jurisdiction: str | None = Field(default=None, max_length=32)
    status: str | None = Field(default=None, max_length=32)
    outcome: str | None = Field(default=None, max_length=32)
    agreement: str | None = None
    agreement_amount: float | None = None
    failure_reason: str | None = None
    referral: str | None = Field(default=None, max_length=32)
    withdrawal_reason: str | None = None
    return_reason: str | None = None  # why a 12345 case went back to the hotline (退单)
    closed_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime, nullable=True))
    visited_at: datetime | None = Field(default=None,
                                        sa_column=Column(UtcDateTime, nullable=True))
    satisfaction: int | None = None
    updated_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


metadata = NotifyBase.metadata
kit_tables = KitTables.define(metadata, "notify")
subscriptions: Table = Subscription.__table__  # type: ignore[attr-defined]
deliveries: Table = DeliveryRecord.__table__  # type: ignore[attr-defined]
attempts: Table = DeliveryAttempt.__table__  # type: ignore[attr-defined]
cases: Table = CaseRecord.__table__  # type: ignore[attr-defined]
endpoints: Table = HotlineEndpoint.__table__  # type: ignore[attr-defined]


async def insert_new(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]],
                     unique: Sequence[str]) -> None:
    """INSERT rows, skipping those whose `unique` columns already exist."""
    if rows:
        await session.execute(insert_for(session, table).on_conflict_do_nothing(
            index_elements=list(unique)), list(rows))


async def upsert(session: AsyncSession, table: Table, rows: Sequence[dict[str, Any]],
                 key: Sequence[str]) -> None:
    """INSERT the rows, or UPDATE only the columns they name (every row names the same ones):
    events about one case arrive on several topics in no common order, and each sets just
    the facts it knows. One key at most once in `rows`."""
    if not rows:
        return
    statement = insert_for(session, table)
    updates = {c: statement.excluded[c] for c in rows[0] if c not in key}
    await session.execute(statement.on_conflict_do_update(index_elements=list(key),
                                                          set_=updates), list(rows))


async def create_endpoint(session: AsyncSession, row: dict[str, Any]) -> bool:
    """INSERT an integration's endpoint unless it has one; whether this one was inserted (of
    two concurrent creations, one is; the other replaces it)."""
    statement = (insert_for(session, endpoints).values(**row)
                 .on_conflict_do_nothing(index_elements=["key_id"])
                 .returning(endpoints.c.key_id))
    return (await session.execute(statement)).first() is not None
