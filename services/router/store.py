"""Router's tables: the reports it routed (to route again on escalation or return), every
decision (its own and the dispatchers'), and the keyed hashes of phone and id numbers that
find prior related cases."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Index, MetaData
from sqlmodel import Field, SQLModel

from kit.db import UtcDateTime
from kit.tables import KitTables


class RouterBase(SQLModel):
    metadata = MetaData()


class RoutedReport(RouterBase, table=True):
    __tablename__ = "router_reports"

    case_id: str = Field(primary_key=True, max_length=64)
    report: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    routing_round: int = 1
    tier: str = Field(max_length=16)
    # Returns by lead departments (退回): how many, and which departments (never again).
    returns: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    returned_by: list[str] = Field(default_factory=list, sa_column=Column(
        JSON, nullable=False, server_default="[]"))


class Decision(RouterBase, table=True):
    __tablename__ = "router_decisions"

    case_id: str = Field(primary_key=True, max_length=64)
    routing_round: int = Field(primary_key=True)
    decision: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    routed_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    # A corrected routing: after a return (the router's) or by hand (a dispatcher's, from
    # mediation's routed event). None for a first routing or an escalation.
    kind: str | None = Field(default=None, max_length=16, index=True)
    correction: dict[str, Any] | None = Field(default=None, sa_column=Column(
        JSON(none_as_null=True), nullable=True))
    awaiting_dispatch: bool = Field(default=False, sa_column=Column(
        Boolean, nullable=False, server_default="false"))


class IdentityHash(RouterBase, table=True):
    """One row per (keyed hash, case): never a phone or id number, only its HMAC."""

    __tablename__ = "router_identity_hashes"
    __table_args__ = (Index("ix_router_identity_hashes_lookup", "identity_hash", "received_at"),)

    identity_hash: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(primary_key=True, max_length=64)
    received_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


metadata = RouterBase.metadata
kit_tables = KitTables.define(metadata, "router")
reports = RoutedReport.__table__  # type: ignore[attr-defined]
decisions = Decision.__table__  # type: ignore[attr-defined]
identity_hashes = IdentityHash.__table__  # type: ignore[attr-defined]
