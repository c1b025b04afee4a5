"""a period's stats read from an index: received_at with the stats' columns included

GET /v1/stats for a year was a sequential scan of every case at a million (the year a
quarter of the table, bench/plans_at_scale.py): its time grew with the table. With every
column count_cases reads carried in the leaves of an index on received_at, it is an
index-only scan of the period's range: its time follows the period's cases, whatever the
table's size or physical order (docs/performance.md, "Cost as the data grows").

An index-only scan skips the table only for pages the visibility map marks all-visible,
which VACUUM sets: autovacuum is asked to vacuum the cases after 1 % of them were inserted
or changed (the default 20 % leaves months of a county's newest cases unmarked at a million).

PostgreSQL only: SQLite has no INCLUDE (its stats read the order index as before).

Revision ID: d4e6f8a0b2c1
Revises: b2c3d4e5f607
Create Date: 2026-12-07 18:30:00.000000
"""
from collections.abc import Sequence

from alembic import op


revision: str = 'd4e6f8a0b2c1'
down_revision: str | None = 'b2c3d4e5f607'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# As services/mediation/store.py's STATS_COLUMNS when this was written (a migration keeps
# its own copy: a later change to the list gets a migration of its own).
INCLUDED = ['lead_department', 'channel', 'tier', 'category', 'jurisdiction_code',
            'cooperating_departments', 'routed_lead_department', 'routed_lead_rule', 'owner',
            'merged_into', 'closed_at', 'mediated_at', 'resolved_at', 'resolve_by',
            'satisfaction', 'prior_related', 'returns', 'reassignments']
VACUUM_SOONER = ('autovacuum_vacuum_scale_factor', 'autovacuum_vacuum_insert_scale_factor')


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    # IF NOT EXISTS: a centre with many cases may build it beforehand with CREATE INDEX
    # CONCURRENTLY (same name and definition) rather than hold writes back while it builds.
    op.create_index('ix_mediation_cases_stats', 'mediation_cases', ['received_at'],
                    unique=False, postgresql_include=INCLUDED, if_not_exists=True)
    op.execute('ALTER TABLE mediation_cases SET ('
               + ', '.join(f'{option} = 0.01' for option in VACUUM_SOONER) + ')')


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(f'ALTER TABLE mediation_cases RESET ({", ".join(VACUUM_SOONER)})')
    op.drop_index('ix_mediation_cases_stats', table_name='mediation_cases')
