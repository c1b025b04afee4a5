"""delivery log by event id: an index for GET /v1/deliveries?event_id=

The unique constraint (subscription_id, event_id) leads with the subscription, so a search
by event id alone read the whole log. Measured in bench/data_scale.py.

Revision ID: b8d5f02e4c31
Revises: 5c1e7a9b2d40
Create Date: 2026-12-07 12:00:00.000000
"""
from collections.abc import Sequence

from alembic import op


revision: str = 'b8d5f02e4c31'
down_revision: str | None = '5c1e7a9b2d40'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_notify_deliveries_event_id', 'notify_deliveries', ['event_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_notify_deliveries_event_id', table_name='notify_deliveries')
