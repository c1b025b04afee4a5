"""Alembic migrations, run programmatically: each service has its own versions folder
(services/<name>/migrations) and its own version table, so services sharing one
PostgreSQL database never touch each other's tables."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parent.parent


def versions_dir(component: str) -> Path:
    if component == "auth":
        return ROOT / "kit" / "migrations"
    return ROOT / "services" / component / "migrations"


def _config(component: str, metadata: MetaData, connection: Connection | None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "kit" / "alembic"))
    cfg.set_main_option("version_locations", str(versions_dir(component)))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes.update(connection=connection, metadata=metadata,
                          version_table=f"alembic_version_{component}")
    return cfg


def _upgrade(conn: Connection, component: str, metadata: MetaData) -> None:
    if conn.dialect.name == "postgresql":
        # Several replicas may start at once: one migrates, the others wait and find it done.
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:n))"),
                     {"n": f"fengqiao-migrate-{component}"})
    command.upgrade(_config(component, metadata, conn), "head")


async def upgrade(engine: AsyncEngine, component: str, metadata: MetaData) -> None:
    """Bring `component`'s tables to the newest revision."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, component, metadata)


def _revision(conn: Connection, component: str, metadata: MetaData, message: str) -> None:
    command.upgrade(_config(component, metadata, conn), "head")
    versions_dir(component).mkdir(parents=True, exist_ok=True)
    command.revision(_config(component, metadata, conn), message=message, autogenerate=True)


async def revision(engine: AsyncEngine, component: str, metadata: MetaData, message: str) -> None:
    """Autogenerate a new revision for `component` against an up-to-date scratch database."""
    async with engine.begin() as conn:
        await conn.run_sync(_revision, component, metadata, message)


def create_kit_table(service: str, which: str) -> None:
    """In a service's migration: create one of the kit's tables (`outbox`, `published`,
    `processed`) for that service, as kit/tables.py defines it, so the kit's tables are
    defined in one place. A later change to a kit table gets its own migration in every
    service, calling an alembic operation of its own, not this."""
    from alembic import op

    from kit.tables import KitTables

    getattr(KitTables.define(MetaData(), service), which).create(op.get_bind())


def outbox_ids_never_reused(service: str) -> None:
    """In a service's migration: make the outbox's ids never reused and add the columns of a
    row the relay set aside. PostgreSQL's sequence never reuses an id already; on SQLite the
    table is rebuilt with AUTOINCREMENT, its sequence starting above every id the outbox and
    the published table have seen."""
    import sqlalchemy as sa
    from alembic import op

    outbox, published = f"{service}_outbox", f"{service}_outbox_published"
    columns: list[sa.Column[object]] = [sa.Column("set_aside_reason", sa.String(1000), nullable=True),
               sa.Column("set_aside_at", sa.Float(), nullable=True)]
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        for column in columns:
            op.add_column(outbox, column)
        return
    with op.batch_alter_table(outbox, recreate="always",
                              table_kwargs={"sqlite_autoincrement": True}) as batch:
        for column in columns:
            batch.add_column(column)
    highest = bind.execute(sa.text(
        f"SELECT max(coalesce((SELECT max(id) FROM {outbox}), 0),"
        f" coalesce((SELECT max(id) FROM {published}), 0))")).scalar_one()
    bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = :t"), {"t": outbox})
    bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :seq)"),
                 {"t": outbox, "seq": highest})


def outbox_ids_never_reused_downgrade(service: str) -> None:
    from alembic import op

    with op.batch_alter_table(f"{service}_outbox") as batch:
        batch.drop_column("set_aside_at")
        batch.drop_column("set_aside_reason")
