"""outbox published rows kept for replay

Revision ID: f997c58e5377
Revises: f360265d7771
Create Date: 2026-11-23 11:52:17.511944
"""
from collections.abc import Sequence

from alembic import op

from kit.migrate import create_kit_table


revision: str = 'f997c58e5377'
down_revision: str | None = 'f360265d7771'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_kit_table("router", "published")


def downgrade() -> None:
    op.drop_table("router_outbox_published")
