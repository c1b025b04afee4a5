"""Mediation's tables: each case with its current status and routing, and its history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, MetaData
from sqlmodel import Field, SQLModel

from kit.db import UtcDateTime
from kit.tables import KitTables


class MediationBase(SQLModel):
    metadata = MetaData()


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(UtcDateTime, nullable=nullable))


class Case(MediationBase, table=True):
    __tablename__ = "mediation_cases"
    __table_args__ = (
        Index("ix_mediation_cases_order", "received_at", "case_id"),
        Index("ix_mediation_cases_channel_external", "channel", "external_id"),
    )

    case_id: str = Field(primary_key=True, max_length=64)
    channel: str = Field(max_length=32)
    external_id: str = Field(max_length=128)
    status: str = Field(max_length=32, index=True)
    version: int = 1
    received_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    text: str | None = None
    report: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    category: str | None = Field(default=None, max_length=32, index=True)
    risk: str | None = Field(default=None, max_length=16, index=True)
    tier: str | None = Field(default=None, max_length=16, index=True)
    lead_department: str | None = Field(default=None, max_length=32, index=True)
    cooperating_departments: list[str] = Field(default_factory=list,
                                               sa_column=Column(JSON, nullable=False))
    jurisdiction_code: str | None = Field(default=None, max_length=16, index=True)
    decision: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    routing_round: int = 0
    accept_by: datetime | None = _ts()
    resolve_by: datetime | None = _ts()
    updated_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class CaseHistory(MediationBase, table=True):
    __tablename__ = "mediation_case_history"
    __table_args__ = (Index("ix_mediation_case_history_case", "case_id", "at"),)

    id: int | None = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True))
    case_id: str = Field(max_length=64)
    from_status: str | None = Field(default=None, max_length=32)
    to_status: str = Field(max_length=32)
    actor: str = Field(max_length=128)
    reason: str | None = None
    at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


metadata = MediationBase.metadata
kit_tables = KitTables.define(metadata, "mediation")
