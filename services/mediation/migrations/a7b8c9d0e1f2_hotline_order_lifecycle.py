"""hotline order lifecycle: who set each time limit, extension requests, activities in history

Revision ID: a7b8c9d0e1f2
Revises: a7c4e91d3b20
Create Date: 2026-12-07 12:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = 'a7b8c9d0e1f2'
down_revision: str | None = 'a7c4e91d3b20'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('mediation_cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('accept_by_source',
                                      sqlmodel.sql.sqltypes.AutoString(length=16),
                                      nullable=True))
        batch_op.add_column(sa.Column('resolve_by_source',
                                      sqlmodel.sql.sqltypes.AutoString(length=16),
                                      nullable=True))
        batch_op.add_column(sa.Column('extension_id',
                                      sqlmodel.sql.sqltypes.AutoString(length=64),
                                      nullable=True))
        batch_op.add_column(sa.Column('extension_status',
                                      sqlmodel.sql.sqltypes.AutoString(length=16),
                                      nullable=True))
        batch_op.add_column(sa.Column('extension_requested_resolve_by',
                                      sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('mediation_case_history', schema=None) as batch_op:
        batch_op.add_column(sa.Column('activity',
                                      sqlmodel.sql.sqltypes.AutoString(length=32),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('mediation_case_history', schema=None) as batch_op:
        batch_op.drop_column('activity')
    with op.batch_alter_table('mediation_cases', schema=None) as batch_op:
        batch_op.drop_column('extension_requested_resolve_by')
        batch_op.drop_column('extension_status')
        batch_op.drop_column('extension_id')
        batch_op.drop_column('resolve_by_source')
        batch_op.drop_column('accept_by_source')
