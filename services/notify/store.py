"""Notify's tables: webhook subscriptions and the durable log of every delivery."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from kit.db import UtcDateTime
from kit.tables import KitTables


class NotifyBase(SQLModel):
    metadata = MetaData()


class Subscription(NotifyBase, table=True):
    __tablename__ = "notify_subscriptions"

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=128)
    url: str = Field(max_length=2048)
    secret: str = Field(max_length=128)
    kinds: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    departments: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    deleted_at: datetime | None = Field(default=None,
                                        sa_column=Column(UtcDateTime, nullable=True))


class DeliveryRecord(NotifyBase, table=True):
    __tablename__ = "notify_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", name="uq_notify_delivery_once"),
        Index("ix_notify_deliveries_due", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True))
    subscription_id: str = Field(max_length=32, index=True)
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


metadata = NotifyBase.metadata
kit_tables = KitTables.define(metadata, "notify")
subscriptions = Subscription.__table__  # type: ignore[attr-defined]
deliveries = DeliveryRecord.__table__  # type: ignore[attr-defined]
