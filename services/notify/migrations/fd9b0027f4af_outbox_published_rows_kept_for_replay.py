"""outbox published rows kept for replay

Revision ID: fd9b0027f4af
Revises: 026a80e0d59d
Create Date: 2026-11-23 11:52:21.445982
"""
from collections.abc import Sequence

from alembic import op

from kit.migrate import create_kit_table


revision: str = 'fd9b0027f4af'
down_revision: str | None = '026a80e0d59d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_kit_table("notify", "published")


def downgrade() -> None:
    op.drop_table("notify_outbox_published")
