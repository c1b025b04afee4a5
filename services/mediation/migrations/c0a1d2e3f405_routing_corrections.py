"""routing corrections: returns, assignments by hand, the acceptance limit's own start

Revision ID: c0a1d2e3f405
Revises: c36e2a9d7f43
Create Date: 2026-12-07 05:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = 'c0a1d2e3f405'
down_revision: str | None = 'c36e2a9d7f43'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('mediation_cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('returns', sa.Integer(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('reassignments', sa.Integer(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('routed_lead_department',
                                      sqlmodel.sql.sqltypes.AutoString(length=32),
                                      nullable=True))
        batch_op.add_column(sa.Column('routed_lead_rule',
                                      sqlmodel.sql.sqltypes.AutoString(length=64),
                                      nullable=True))
        batch_op.add_column(sa.Column('accept_from', sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('mediation_cases', schema=None) as batch_op:
        batch_op.drop_column('accept_from')
        batch_op.drop_column('routed_lead_rule')
        batch_op.drop_column('routed_lead_department')
        batch_op.drop_column('reassignments')
        batch_op.drop_column('returns')
