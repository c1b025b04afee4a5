"""A case first seen in a run of events is a plain row (store.NewCase): it must carry what a
SQLModel Case made from the same values would, column for column."""

from __future__ import annotations

from datetime import UTC, datetime

from services.mediation.store import CASES, Case, NewCase

AT = datetime(2026, 11, 23, 1, 30, tzinfo=UTC)
GIVEN = {"case_id": "FQ1", "channel": "hotline_12345", "external_id": "GD-1", "status": "",
         "version": 0, "received_at": AT, "updated_at": AT}


def test_a_new_case_row_has_every_column_with_the_models_defaults() -> None:
    model = Case(**GIVEN)
    row = NewCase(**GIVEN).row()
    assert set(row) == {column.name for column in CASES.columns}
    assert row == {name: getattr(model, name) for name in row}


def test_changes_land_in_the_row_and_lists_are_not_shared() -> None:
    first, second = NewCase(**GIVEN), NewCase(**GIVEN)
    first.sqlmodel_update({"status": "reported", "version": 1, "tier": "town"})
    first.cooperating_departments.append("health")
    assert first.row()["status"] == "reported" and first.row()["tier"] == "town"
    assert second.cooperating_departments == []
