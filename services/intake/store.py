"""Intake's tables: every accepted report with its native payload (phone and id numbers in
clear live only here), unique per channel and external id, and intake's outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, MetaData, UniqueConstraint
from sqlmodel import Field, SQLModel

from kit.db import UtcDateTime
from kit.tables import KitTables


class IntakeBase(SQLModel):
    metadata = MetaData()


class IntakeCase(IntakeBase, table=True):
    __tablename__ = "intake_cases"
    __table_args__ = (UniqueConstraint("channel", "external_id",
                                       name="uq_intake_cases_channel_external_id"),)

    case_id: str = Field(primary_key=True, max_length=64)
    channel: str = Field(max_length=32)
    external_id: str = Field(max_length=128)
    fingerprint: str = Field(max_length=64)
    received_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    created_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    native: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


metadata = IntakeBase.metadata
kit_tables = KitTables.define(metadata, "intake")
