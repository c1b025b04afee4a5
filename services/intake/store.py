"""Intake's tables: every accepted report with its native payload (phone and id numbers in
clear live only here), unique per channel and external id; the public face of Open311
requests; who was shown a case's numbers in clear, and why; and intake's outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    Text,
    UniqueConstraint,
)
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
    # Set when case.personal_data_erased.v1 emptied `native`: nothing is revealed any more.
    personal_data_erased_at: datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime, nullable=True))


class Open311Row(IntakeBase, table=True):
    """An Open311 request as GET requests.json may show it: no name, phone, email or device
    id (those stay in intake_cases.native), and the description with numbers masked."""

    __tablename__ = "intake_open311_requests"
    __table_args__ = (Index("ix_intake_open311_requests_requested", "requested_datetime"),
                      UniqueConstraint("token", name="uq_intake_open311_requests_token"))

    service_request_id: str = Field(primary_key=True, max_length=64,
                                    description="The case id")
    token: str = Field(max_length=64)
    service_code: str = Field(max_length=64)
    description: str = Field(sa_column=Column(Text, nullable=False))
    lat: float | None = None
    long: float | None = None
    address: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    address_id: str | None = Field(default=None, max_length=64)
    media_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    status: str = Field(default="open", max_length=16)
    status_notes: str | None = Field(default=None, max_length=256)
    agency_responsible: str | None = Field(default=None, max_length=64)
    # The case version the status reflects (from case.lifecycle.v1), so that a replayed or
    # late event never moves the status backwards.
    case_version: int = 0
    requested_datetime: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    updated_datetime: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class RevealRecord(IntakeBase, table=True):
    """One row per request for a case's phone or id numbers in clear (POST /v1/intake/cases/
    {case_id}/personal-data), granted or not: who (the key), which case and person, why
    (the reason the person gave, numbers masked) and what came of it."""

    __tablename__ = "intake_personal_data_reveals"
    __table_args__ = (Index("ix_intake_personal_data_reveals_case", "case_id", "at"),
                      Index("ix_intake_personal_data_reveals_key", "key_id", "at"))

    id: int | None = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True))
    at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    key_id: str = Field(max_length=32)
    key_name: str = Field(max_length=128)
    case_id: str = Field(max_length=64)
    person: str | None = Field(default=None, max_length=32,
                               description="reporter, parties.N; none: everyone in the case")
    reason: str = Field(sa_column=Column(Text, nullable=False))
    outcome: str = Field(max_length=16)


metadata = IntakeBase.metadata
kit_tables = KitTables.define(metadata, "intake")
