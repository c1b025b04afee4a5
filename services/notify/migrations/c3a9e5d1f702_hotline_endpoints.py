"""hotline endpoints: one registered callback endpoint per hotline integration (API key),
the posting key of each case, and the endpoint a callback goes to

Revision ID: c3a9e5d1f702
Revises: b8d5f02e4c31
Create Date: 2026-12-07 15:30:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = 'c3a9e5d1f702'
down_revision: str | None = 'b8d5f02e4c31'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'notify_hotline_endpoints',
        sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('url', sqlmodel.sql.sqltypes.AutoString(length=2048), nullable=False),
        sa.Column('secret', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column('kinds', sa.JSON(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column('previous_secret', sqlmodel.sql.sqltypes.AutoString(length=128),
                  nullable=True),
        sa.Column('previous_secret_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key_id'))
    with op.batch_alter_table('notify_cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('integration_key_id',
                                      sqlmodel.sql.sqltypes.AutoString(length=32),
                                      nullable=True))
    with op.batch_alter_table('notify_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('endpoint_key_id',
                                      sqlmodel.sql.sqltypes.AutoString(length=32),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('notify_deliveries', schema=None) as batch_op:
        batch_op.drop_column('endpoint_key_id')
    with op.batch_alter_table('notify_cases', schema=None) as batch_op:
        batch_op.drop_column('integration_key_id')
    op.drop_table('notify_hotline_endpoints')
