"""Each service's migrations build exactly the tables its code declares: a fresh database
brought to head by the migrations has nothing autogenerate would add, drop or alter. (A
change to a table without its migration would otherwise only show in production.)"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, MetaData

from kit import migrate
from kit.auth import auth_metadata
from kit.db import create_engine
from tests.infra import create_pg_database, drop_pg_database

pytestmark = pytest.mark.integration

COMPONENTS = {
    "intake": lambda: importlib.import_module("services.intake.store").IntakeBase.metadata,
    "router": lambda: importlib.import_module("services.router.store").metadata,
    "mediation": lambda: importlib.import_module("services.mediation.store").metadata,
    "notify": lambda: importlib.import_module("services.notify.store").metadata,
    "workbench": lambda: importlib.import_module("services.workbench.store").metadata,
    "auth": lambda: auth_metadata,
}


def _differences(connection: Connection, metadata: MetaData) -> list[Any]:
    dialect = connection.dialect.name

    def include(obj: Any, name: str | None, type_: str, reflected: bool,
                compare_to: Any) -> bool:
        # A declared index that only PostgreSQL has (INCLUDE columns, as mediation's stats
        # index): its migration skips the other databases.
        return not (dialect != "postgresql" and type_ == "index" and not reflected
                    and bool(obj.dialect_options["postgresql"].get("include")))

    context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                           "include_object": include})
    own = set(metadata.tables)
    # Only this component's tables: the database also holds the version tables.
    return [d for d in compare_metadata(context, metadata)
            if not (d[0] == "remove_table" and d[1].name not in own)]


@pytest.mark.parametrize("component", sorted(COMPONENTS))
async def test_migrations_match_the_declared_tables(
        component: str, database_url: str, tmp_path: Path) -> None:
    name = ""
    if database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
    else:
        url, name = await create_pg_database()
    metadata = COMPONENTS[component]()
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine, component, metadata)
        async with engine.connect() as conn:
            differences = await conn.run_sync(_differences, metadata)
        assert differences == [], f"{component}: the migrations and the tables differ"
    finally:
        await engine.dispose()
        if name:
            await drop_pg_database(name)
