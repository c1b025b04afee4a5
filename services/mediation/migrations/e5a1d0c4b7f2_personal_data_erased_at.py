"""personal data erased at: when a case's personal data was erased (retention, request)

Revision ID: e5a1d0c4b7f2
Revises: f3a4b5c6d708
Create Date: 2026-12-07 05:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'e5a1d0c4b7f2'
down_revision: str | None = 'f3a4b5c6d708'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('mediation_cases', sa.Column('personal_data_erased_at',
                                               sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('mediation_cases') as batch:
        batch.drop_column('personal_data_erased_at')
