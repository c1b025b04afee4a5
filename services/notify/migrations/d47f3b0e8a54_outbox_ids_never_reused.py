"""outbox ids never reused; rows the relay set aside

Revision ID: d47f3b0e8a54
Revises: fd9b0027f4af
Create Date: 2026-12-07 05:00:00
"""
from collections.abc import Sequence

from kit.migrate import outbox_ids_never_reused, outbox_ids_never_reused_downgrade


revision: str = 'd47f3b0e8a54'
down_revision: str | None = 'fd9b0027f4af'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    outbox_ids_never_reused("notify")


def downgrade() -> None:
    outbox_ids_never_reused_downgrade("notify")
