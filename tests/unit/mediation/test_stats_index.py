"""The stats read no column that ix_mediation_cases_stats does not carry: with every column
in the index's leaves, a period's stats are an index-only scan of the period's range on
PostgreSQL (tests/integration/test_query_plans.py checks the plans). A new count, group or
filter on another column fails here, before it quietly sends the stats back to the table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Column
from sqlalchemy.sql import ColumnElement, visitors

from contracts.api_mediation import PERIODS, StatsDimension
from kit.auth import Principal
from services.mediation import store
from services.mediation.store import STATS_COLUMNS, C, Case

NON_PERIODS = [d for d in StatsDimension if d not in PERIODS]
KEY = Principal(key_id="k", name="k", scopes=frozenset(),
                departments=frozenset({"health"}), jurisdictions=frozenset({"330102005"}),
                channels=frozenset({"court"}))


def columns_read(element: ColumnElement[bool] | object) -> set[str]:
    return {node.name for node in visitors.iterate(element)  # type: ignore[arg-type]
            if isinstance(node, Column) and node.table is Case.__table__}


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
@pytest.mark.parametrize("period", sorted(PERIODS))
def test_the_stats_read_only_the_indexed_columns(dialect: str, period: StatsDimension) -> None:
    # Every dimension, the API's filters, a limited key's conditions, towns.
    visible = store.visible_to(KEY)
    assert visible is not None
    where = [C.received_at >= datetime(2025, 1, 1, tzinfo=UTC),
             C.received_at < datetime(2026, 1, 1, tzinfo=UTC),
             C.channel == "court", C.tier == "county", C.lead_department == "health",
             C.category == "medical", store.within_jurisdictions({"330102"}), visible]
    for level in (None, "town"):
        query = store.stats_query([period, *NON_PERIODS], where, dialect, level)
        read = columns_read(query)
        assert "received_at" in read
        assert read - {"received_at"} <= set(STATS_COLUMNS), \
            f"read and not in the stats index: {sorted(read - {'received_at'} - set(STATS_COLUMNS))}"


def test_the_index_carries_the_columns() -> None:
    [index] = [i for i in Case.__table__.indexes if i.name == "ix_mediation_cases_stats"]
    assert [c.name for c in index.columns] == ["received_at"]
    assert list(index.dialect_options["postgresql"]["include"]) == list(STATS_COLUMNS)
