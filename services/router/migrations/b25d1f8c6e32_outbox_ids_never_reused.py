"""outbox ids never reused; rows the relay set aside

Revision ID: b25d1f8c6e32
Revises: f997c58e5377
Create Date: 2026-12-07 05:00:00
"""
from collections.abc import Sequence

from kit.migrate import outbox_ids_never_reused, outbox_ids_never_reused_downgrade


revision: str = 'b25d1f8c6e32'
down_revision: str | None = 'f997c58e5377'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    outbox_ids_never_reused("router")


def downgrade() -> None:
    outbox_ids_never_reused_downgrade("router")
