"""case places and points: where each case is (place code, a subtree by index range) and
its point on the map (lat, lon) for bounding boxes and GeoJSON

Rows from before get them from what they hold: the place code from the stored decision
(its place, else its jurisdiction), the point from the stored report's coordinates unless
the case's personal data was erased.

Revision ID: a7c3e9f1b2d4
Revises: e5a1d0c4b7f2
Create Date: 2026-12-07 12:00:00.000000
"""
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = 'a7c3e9f1b2d4'
down_revision: str | None = 'e5a1d0c4b7f2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table('mediation_cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('place_code', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('lat', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('lon', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('position', sa.String(length=16), nullable=True))
        batch_op.create_index('ix_mediation_cases_place_code', ['place_code'], unique=False)
        batch_op.create_index('ix_mediation_cases_lon_lat', ['lon', 'lat'], unique=False)
    _fill_from_existing_rows()


def _fill_from_existing_rows() -> None:
    cases = sa.table('mediation_cases', sa.column('case_id', sa.String),
                     sa.column('report', sa.JSON), sa.column('decision', sa.JSON),
                     sa.column('jurisdiction_code', sa.String),
                     sa.column('personal_data_erased_at', sa.String),
                     sa.column('place_code', sa.String), sa.column('lat', sa.Float),
                     sa.column('lon', sa.Float), sa.column('position', sa.String))
    bind = op.get_bind()
    after = ''
    while True:
        rows = bind.execute(
            sa.select(cases.c.case_id, cases.c.report, cases.c.decision,
                      cases.c.jurisdiction_code, cases.c.personal_data_erased_at)
            .where(cases.c.case_id > after).order_by(cases.c.case_id).limit(_BATCH)).all()
        if not rows:
            return
        for row in rows:
            values = _values(row)
            if values:
                bind.execute(sa.update(cases).where(cases.c.case_id == row.case_id)
                             .values(**values))
        after = rows[-1].case_id


def _values(row: Any) -> dict[str, Any]:
    """The same rules as services/mediation/domain/places.py, frozen here as of this
    migration (a migration must not change when the code does)."""
    values: dict[str, Any] = {}
    decision = row.decision if isinstance(row.decision, dict) else {}
    place = decision.get('place') or decision.get('jurisdiction') or {}
    code = (place.get('code') if isinstance(place, dict) else None) or row.jurisdiction_code
    if code:
        values['place_code'] = str(code)[:16]
    location = (row.report or {}).get('location') if isinstance(row.report, dict) else None
    if row.personal_data_erased_at is None and isinstance(location, dict):
        lat, lon = location.get('lat'), location.get('lon')
        if isinstance(lat, int | float) and isinstance(lon, int | float):
            values.update(lat=float(lat), lon=float(lon), position='reported')
    return values


def downgrade() -> None:
    with op.batch_alter_table('mediation_cases', schema=None) as batch_op:
        batch_op.drop_index('ix_mediation_cases_lon_lat')
        batch_op.drop_index('ix_mediation_cases_place_code')
        batch_op.drop_column('position')
        batch_op.drop_column('lon')
        batch_op.drop_column('lat')
        batch_op.drop_column('place_code')
