"""outbox ids never reused; rows the relay set aside

Revision ID: c36e2a9d7f43
Revises: bef686f05236
Create Date: 2026-12-07 05:00:00
"""
from collections.abc import Sequence

from kit.migrate import outbox_ids_never_reused, outbox_ids_never_reused_downgrade


revision: str = 'c36e2a9d7f43'
down_revision: str | None = 'bef686f05236'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    outbox_ids_never_reused("mediation")


def downgrade() -> None:
    outbox_ids_never_reused_downgrade("mediation")
