"""subscriptions filter on the cases' channels (channel-limited keys subscribe within them)

Revision ID: 5c1e7a9b2d40
Revises: e2f3a4b5c607
Create Date: 2026-12-07 05:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op


revision: str = '5c1e7a9b2d40'
down_revision: str | None = 'e2f3a4b5c607'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('notify_subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channels', sa.JSON(), server_default=sa.text("'[]'"),
                                      nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('notify_subscriptions', schema=None) as batch_op:
        batch_op.drop_column('channels')
