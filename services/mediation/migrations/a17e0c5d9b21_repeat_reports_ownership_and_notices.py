"""repeat reports, leader ownership and supervision notices (关联合并 / 领导包案 / 督办催办)

The keys that tie a case to the other reports of its matter, the main case a report was
merged into, the leader who owns a case, and the supervision notices leaders issue.

Revision ID: a17e0c5d9b21
Revises: a7b8c9d0e1f2
Create Date: 2026-12-07 12:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'a17e0c5d9b21'
down_revision: str | None = 'a7b8c9d0e1f2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'mediation_case_keys',
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('key', sa.String(length=96), nullable=False),
        sa.Column('case_id', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('kind', 'key', 'case_id', name='pk_mediation_case_keys'))
    op.create_index('ix_mediation_case_keys_case', 'mediation_case_keys', ['case_id'])
    op.create_table(
        'mediation_supervision_notices',
        sa.Column('notice_id', sa.String(length=36), nullable=False),
        sa.Column('case_id', sa.String(length=64), nullable=False),
        sa.Column('level', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('asked', sa.String(), nullable=False),
        sa.Column('department', sa.String(length=32), nullable=True),
        sa.Column('issued_by', sa.String(length=128), nullable=False),
        sa.Column('issued_key_id', sa.String(length=32), nullable=False),
        sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('answer_by', sa.DateTime(timezone=True), nullable=False),
        sa.Column('answer_seconds', sa.Float(), nullable=False),
        sa.Column('raises', sa.Integer(), nullable=False),
        sa.Column('answer', sa.String(), nullable=True),
        sa.Column('answered_by', sa.String(length=128), nullable=True),
        sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('answered_on_time', sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint('notice_id'))
    op.create_index('ix_mediation_supervision_notices_case', 'mediation_supervision_notices',
                    ['case_id', 'issued_at'])
    op.create_index('ix_mediation_supervision_notices_due', 'mediation_supervision_notices',
                    ['status', 'answer_by'])
    with op.batch_alter_table('mediation_cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('merged_into', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('owner', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('owner_key_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('owner_proposed', sa.Boolean(),
                                      server_default=sa.false(), nullable=False))
        batch_op.create_index('ix_mediation_cases_merged_into', ['merged_into'], unique=False)
        batch_op.create_index('ix_mediation_cases_owner_key_id', ['owner_key_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('mediation_cases', schema=None) as batch_op:
        batch_op.drop_index('ix_mediation_cases_owner_key_id')
        batch_op.drop_index('ix_mediation_cases_merged_into')
        batch_op.drop_column('owner_proposed')
        batch_op.drop_column('owner_key_id')
        batch_op.drop_column('owner')
        batch_op.drop_column('merged_into')
    op.drop_index('ix_mediation_supervision_notices_due',
                  table_name='mediation_supervision_notices')
    op.drop_index('ix_mediation_supervision_notices_case',
                  table_name='mediation_supervision_notices')
    op.drop_table('mediation_supervision_notices')
    op.drop_index('ix_mediation_case_keys_case', table_name='mediation_case_keys')
    op.drop_table('mediation_case_keys')
