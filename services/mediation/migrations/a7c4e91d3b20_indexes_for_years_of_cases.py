"""indexes for years of cases: filters in the list's order, external_id

The case list filters by status, category, risk, tier or lead department and pages newest
first: (filter, received_at, case_id) reads a page in order from the index however many
cases match; each replaces the single-column index on its filter, which it also serves.

The case list's `external_id=` filter comes without a channel, so the index leads with
external_id. (Division codes are searched as an index range on the plain index, see
store.subtree.) Measured in bench/data_scale.py, docs/performance.md.

Revision ID: a7c4e91d3b20
Revises: a7c3e9f1b2d4
Create Date: 2026-12-07 12:00:00.000000
"""
from collections.abc import Sequence

from alembic import op


revision: str = 'a7c4e91d3b20'
down_revision: str | None = 'a7c3e9f1b2d4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


FILTERS = ('status', 'category', 'risk', 'tier', 'lead_department')


def upgrade() -> None:
    for column in FILTERS:
        op.drop_index(f'ix_mediation_cases_{column}', table_name='mediation_cases')
        op.create_index(f'ix_mediation_cases_{column}_order', 'mediation_cases',
                        [column, 'received_at', 'case_id'], unique=False)
    op.drop_index('ix_mediation_cases_channel_external', table_name='mediation_cases')
    op.create_index('ix_mediation_cases_external_channel', 'mediation_cases',
                    ['external_id', 'channel'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_mediation_cases_external_channel', table_name='mediation_cases')
    op.create_index('ix_mediation_cases_channel_external', 'mediation_cases',
                    ['channel', 'external_id'], unique=False)
    for column in FILTERS:
        op.drop_index(f'ix_mediation_cases_{column}_order', table_name='mediation_cases')
        op.create_index(f'ix_mediation_cases_{column}', 'mediation_cases', [column],
                        unique=False)
