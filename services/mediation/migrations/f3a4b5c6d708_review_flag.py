"""review flag: cases whose routing the router's readers doubted (待研判)

Revision ID: f3a4b5c6d708
Revises: c0a1d2e3f405
Create Date: 2026-12-07 06:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'f3a4b5c6d708'
down_revision: str | None = 'c0a1d2e3f405'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('mediation_cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('review_flagged', sa.Boolean(),
                                      server_default=sa.false(), nullable=False))
        batch_op.create_index('ix_mediation_cases_review_flagged', ['review_flagged'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('mediation_cases', schema=None) as batch_op:
        batch_op.drop_index('ix_mediation_cases_review_flagged')
        batch_op.drop_column('review_flagged')
