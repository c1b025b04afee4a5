"""The kit's own tables, created inside each service's metadata: its outbox and the keys
of the events it has processed (so a redelivered event has no second effect)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

BigId = BigInteger().with_variant(Integer(), "sqlite")


@dataclass(frozen=True)
class KitTables:
    outbox: Table
    processed: Table

    @classmethod
    def define(cls, metadata: MetaData, service: str) -> KitTables:
        outbox = Table(
            f"{service}_outbox", metadata,
            Column("id", BigId, primary_key=True, autoincrement=True),
            Column("topic", String(255), nullable=False),
            Column("key", String(255), nullable=True),
            Column("value", LargeBinary, nullable=False),
            Column("headers", JSON, nullable=True),
            Column("created_at", Float, nullable=False),
        )
        processed = Table(
            f"{service}_processed_events", metadata,
            Column("consumer", String(128), primary_key=True),
            Column("event_id", String(255), primary_key=True),
            Column("processed_at", Float, nullable=False),
        )
        return cls(outbox=outbox, processed=processed)
