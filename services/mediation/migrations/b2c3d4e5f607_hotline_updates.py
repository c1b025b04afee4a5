"""hotline updates after the order: chasers counted on the case, updates by the hotline's id

Revision ID: b2c3d4e5f607
Revises: a17e0c5d9b21
Create Date: 2026-12-07 15:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = 'b2c3d4e5f607'
down_revision: str | None = 'a17e0c5d9b21'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('mediation_cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chasers', sa.Integer(), server_default='0',
                                      nullable=False))
    op.create_table(
        'mediation_hotline_updates',
        sa.Column('case_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('update_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('fingerprint', sa.JSON(), nullable=False),
        sa.Column('result', sa.JSON(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('case_id', 'update_id', name='pk_mediation_hotline_updates'))


def downgrade() -> None:
    op.drop_table('mediation_hotline_updates')
    with op.batch_alter_table('mediation_cases', schema=None) as batch_op:
        batch_op.drop_column('chasers')
