"""routing corrections: returns on reports, corrected decisions

Revision ID: d1e2f3a4b506
Revises: b25d1f8c6e32
Create Date: 2026-12-07 05:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = 'd1e2f3a4b506'
down_revision: str | None = 'b25d1f8c6e32'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('router_reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('returns', sa.Integer(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('returned_by', sa.JSON(), server_default='[]',
                                      nullable=False))
    with op.batch_alter_table('router_decisions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16),
                                      nullable=True))
        batch_op.add_column(sa.Column('correction', sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column('awaiting_dispatch', sa.Boolean(),
                                      server_default='false', nullable=False))
        batch_op.create_index(batch_op.f('ix_router_decisions_kind'), ['kind'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('router_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_router_decisions_kind'))
        batch_op.drop_column('awaiting_dispatch')
        batch_op.drop_column('correction')
        batch_op.drop_column('kind')
    with op.batch_alter_table('router_reports', schema=None) as batch_op:
        batch_op.drop_column('returned_by')
        batch_op.drop_column('returns')
