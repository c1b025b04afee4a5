"""outbox published rows kept for replay

Revision ID: 827fbd2f5926
Revises: 9e2f6e4cf669
Create Date: 2026-11-23 11:52:15.010735
"""
from collections.abc import Sequence

from alembic import op

from kit.migrate import create_kit_table


revision: str = '827fbd2f5926'
down_revision: str | None = '9e2f6e4cf669'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_kit_table("intake", "published")


def downgrade() -> None:
    op.drop_table("intake_outbox_published")
