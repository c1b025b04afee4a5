"""personal data reveals: the audit of clear numbers shown, and erased cases marked

Revision ID: c5e1a9d3b7f2
Revises: a14c0e7b5d21
Create Date: 2026-12-07 12:00:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = 'c5e1a9d3b7f2'
down_revision: str | None = 'a14c0e7b5d21'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('intake_personal_data_reveals',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
              nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('key_name', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('case_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('person', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_intake_personal_data_reveals_case', 'intake_personal_data_reveals',
                    ['case_id', 'at'], unique=False)
    op.create_index('ix_intake_personal_data_reveals_key', 'intake_personal_data_reveals',
                    ['key_id', 'at'], unique=False)
    # batch_alter_table: SQLite adds the column the same way.
    with op.batch_alter_table('intake_cases') as batch:
        batch.add_column(sa.Column('personal_data_erased_at', sa.DateTime(timezone=True),
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('intake_cases') as batch:
        batch.drop_column('personal_data_erased_at')
    op.drop_index('ix_intake_personal_data_reveals_key', table_name='intake_personal_data_reveals')
    op.drop_index('ix_intake_personal_data_reveals_case',
                  table_name='intake_personal_data_reveals')
    op.drop_table('intake_personal_data_reveals')
