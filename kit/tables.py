"""The kit's own tables, created inside each service's metadata: its outbox, the rows it
published lately (kept for a while, to publish again to a broker that lost them), and the keys
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
# The columns an outbox row and a kept published row have in common.
RECORD_COLUMNS = ("id", "topic", "key", "value", "headers", "created_at")


def _record_columns() -> list[Column[object]]:
    """What an outbox row holds besides its id: the record to publish, and when it was made."""
    return [Column("topic", String(255), nullable=False),
            Column("key", String(255), nullable=True),
            Column("value", LargeBinary, nullable=False),
            Column("headers", JSON, nullable=True),
            Column("created_at", Float, nullable=False)]


@dataclass(frozen=True)
class KitTables:
    outbox: Table
    published: Table
    processed: Table

    @classmethod
    def define(cls, metadata: MetaData, service: str) -> KitTables:
        # Ids are never handed out twice, on any backend: a published row keeps its id in the
        # published table, so an id reused after the outbox drained would collide there.
        # PostgreSQL's identity sequence never reuses; SQLite needs AUTOINCREMENT for that
        # (without it a new row gets max(id) + 1, which an emptied outbox sets back).
        outbox = Table(
            f"{service}_outbox", metadata,
            Column("id", BigId, primary_key=True, autoincrement=True), *_record_columns(),
            # Set when the relay gives up on a row (the broker refuses it, or it alone kept
            # failing while the rows around it were published): the relay skips it and says
            # why; an operator clears the reason to have it published again.
            Column("set_aside_reason", String(1000), nullable=True),
            Column("set_aside_at", Float, nullable=True),
            sqlite_autoincrement=True)
        # Published rows move here with the broker epoch they were published to, until
        # outbox_retention_seconds have passed: if the broker loses its data (a restarted
        # memory-only broker), the relay publishes every row not yet on the new one again.
        published = Table(
            f"{service}_outbox_published", metadata,
            Column("id", BigId, primary_key=True, autoincrement=False), *_record_columns(),
            Column("published_at", Float, nullable=False),
            Column("broker_epoch", BigInteger, nullable=False),
        )
        processed = Table(
            f"{service}_processed_events", metadata,
            Column("consumer", String(128), primary_key=True),
            Column("event_id", String(255), primary_key=True),
            Column("processed_at", Float, nullable=False),
        )
        return cls(outbox=outbox, published=published, processed=processed)
