"""Mediation's tables for repeat reports and supervision by hand: the keys that tie a case
to others of its matter (关联), and the supervision notices leaders issue (督办 / 催办).
They share store.py's metadata; store.py imports this module so every table is declared
wherever the metadata is used (migrations, tests)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, PrimaryKeyConstraint, Table
from sqlmodel import Field

from kit.db import UtcDateTime
from services.mediation.store import MediationBase


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(UtcDateTime, nullable=nullable))


class CaseKey(MediationBase, table=True):
    """One key a case's report is indexed by (domain/matters.py): a person's keyed hash, a
    normalised address's hash, a place's cell. Looked up by (kind, key)."""

    __tablename__ = "mediation_case_keys"
    __table_args__ = (PrimaryKeyConstraint("kind", "key", "case_id",
                                           name="pk_mediation_case_keys"),
                      Index("ix_mediation_case_keys_case", "case_id"))

    kind: str = Field(max_length=16)
    key: str = Field(max_length=96)
    case_id: str = Field(max_length=64)


class SupervisionNotice(MediationBase, table=True):
    """A supervision notice a leader issued on a case (提示, 催办, 督办, 挂牌督办): what is
    asked, by when the lead department answers (反馈), and the answer. Unanswered by
    `answer_by`, the leader's job raises it one level and gives it as long again."""

    __tablename__ = "mediation_supervision_notices"
    __table_args__ = (Index("ix_mediation_supervision_notices_case", "case_id", "issued_at"),
                      Index("ix_mediation_supervision_notices_due", "status", "answer_by"))

    notice_id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(max_length=64)
    level: str = Field(max_length=16)
    status: str = Field(max_length=16)  # open, answered
    asked: str
    # The department the notice presses: the case's lead department when it was issued.
    department: str | None = Field(default=None, max_length=32)
    issued_by: str = Field(max_length=128)
    issued_key_id: str = Field(max_length=32)
    issued_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    answer_by: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    # How long the department was given: a raised notice gets as long again.
    answer_seconds: float
    raises: int = 0
    answer: str | None = None
    answered_by: str | None = Field(default=None, max_length=128)
    answered_at: datetime | None = _ts()
    answered_on_time: bool | None = None


CASE_KEYS: Table = CaseKey.__table__  # type: ignore[attr-defined]
K = CASE_KEYS.c
NOTICES: Table = SupervisionNotice.__table__  # type: ignore[attr-defined]
N = NOTICES.c
