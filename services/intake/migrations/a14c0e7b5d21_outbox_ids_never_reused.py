"""outbox ids never reused; rows the relay set aside

Revision ID: a14c0e7b5d21
Revises: 827fbd2f5926
Create Date: 2026-12-07 05:00:00
"""
from collections.abc import Sequence

from kit.migrate import outbox_ids_never_reused, outbox_ids_never_reused_downgrade


revision: str = 'a14c0e7b5d21'
down_revision: str | None = '827fbd2f5926'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    outbox_ids_never_reused("intake")


def downgrade() -> None:
    outbox_ids_never_reused_downgrade("intake")
