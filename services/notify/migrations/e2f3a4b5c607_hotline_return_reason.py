"""hotline return reason: why a 12345 case went back to the hotline (退单)

Revision ID: e2f3a4b5c607
Revises: d47f3b0e8a54
Create Date: 2026-12-07 05:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = 'e2f3a4b5c607'
down_revision: str | None = 'd47f3b0e8a54'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('notify_cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('return_reason', sqlmodel.sql.sqltypes.AutoString(),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('notify_cases', schema=None) as batch_op:
        batch_op.drop_column('return_reason')
