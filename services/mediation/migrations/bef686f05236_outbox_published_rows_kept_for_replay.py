"""outbox published rows kept for replay

Revision ID: bef686f05236
Revises: 7d783c5311a1
Create Date: 2026-11-23 11:52:19.769745
"""
from collections.abc import Sequence

from alembic import op

from kit.migrate import create_kit_table


revision: str = 'bef686f05236'
down_revision: str | None = '7d783c5311a1'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_kit_table("mediation", "published")


def downgrade() -> None:
    op.drop_table("mediation_outbox_published")
