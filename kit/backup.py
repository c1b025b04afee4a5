"""`fengqiao backup DIR` and `fengqiao restore DIR`: a consistent copy of every service's
database with a manifest (time, schema revisions, row counts, checksums), and its return.

On the embedded default each service has its own SQLite file under the var dir: each is
copied with SQLite's online backup API, which reads one consistent snapshot while the services
keep writing. The copies are taken downstream first (notify, mediation, router, then intake
and the keys): a later copy may hold events an earlier one has not processed yet, never the
reverse, and those events are in the later copy's kept outbox rows, which a restored platform
publishes again (see docs/reliability.md, "Backup and restore").

On PostgreSQL (FQ_DATABASE_URL set) each database is dumped with `pg_dump -Fc` inside one
exported snapshot, the manifest's row counts read in that same snapshot.

A restore checks the manifest (checksums; no schema revision the code does not know),
refuses to overwrite a platform that is running, restores, and marks the restored kept outbox
rows as published to no broker, just now, so that the relays publish them all again."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from kit.migrate import ROOT, versions_dir
from kit.settings import SERVICE_PORTS, Settings
from kit.tansu import port_open

MANIFEST = "manifest.json"
FORMAT = 1
# Downstream first: a later copy may be ahead of an earlier one, and the outbox replay after
# a restore brings the earlier one up to it. Upstream first would leave a downstream copy
# with cases its upstream never took.
BACKUP_ORDER = ("notify", "mediation", "router", "intake", "auth")
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


class BackupError(Exception):
    """The backup or restore cannot go on; the message says why, for the operator."""


@dataclass(frozen=True)
class Database:
    """One database of the platform and the components (services, `auth`) that use it."""

    name: str
    url: str
    components: tuple[str, ...]

    @property
    def sqlite(self) -> bool:
        return make_url(self.url).get_backend_name() == "sqlite"

    @property
    def path(self) -> Path:
        return Path(make_url(self.url).database or "")


def platform_databases(settings: Callable[..., Settings] = Settings) -> list[Database]:
    """Every database the services' settings name (FQ_DATABASE_URL, FQ_AUTH_DATABASE_URL or
    the embedded default's files), in backup order; services sharing one are listed once."""
    users: dict[str, list[str]] = {}
    for component in BACKUP_ORDER:
        url = (settings().effective_auth_database_url() if component == "auth"
               else settings(service=component).effective_database_url())
        users.setdefault(url, []).append(component)
    databases: list[Database] = []
    for url, components in users.items():
        parsed = make_url(url)
        base = (Path(parsed.database or "db").stem if parsed.get_backend_name() == "sqlite"
                else parsed.database or "postgres")
        name, n = base, 1
        while any(d.name == name for d in databases):
            n += 1
            name = f"{base}-{n}"
        databases.append(Database(name, url, tuple(components)))
    return databases


def code_revisions(component: str) -> set[str]:
    """Every schema revision this code knows for `component` (a restore refuses others)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "kit" / "alembic"))
    cfg.set_main_option("version_locations", str(versions_dir(component)))
    cfg.set_main_option("path_separator", "os")
    return {script.revision for script in ScriptDirectory.from_config(cfg).walk_revisions()}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- SQLite -----------------------------------------------------------------------------


def _sqlite_contents(conn: sqlite3.Connection) -> tuple[dict[str, str], dict[str, int]]:
    """(component: schema revision, table: row count) of an open SQLite database."""
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        " ORDER BY name")]
    revisions = {}
    for table in tables:
        if table.startswith("alembic_version_"):
            row = conn.execute(f'SELECT version_num FROM "{table}"').fetchone()
            if row:
                revisions[table.removeprefix("alembic_version_")] = row[0]
    counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    return revisions, counts


def _sqlite_backup(db: Database, dest: Path) -> dict[str, Any]:
    if not db.path.exists():
        raise BackupError(f"{db.path} does not exist: has {'/'.join(db.components)} ever run "
                          "with this FQ_VAR_DIR?")
    source = sqlite3.connect(db.path, timeout=30)
    target = sqlite3.connect(dest)
    try:
        # One step (all pages) under one read transaction: a consistent snapshot however
        # much the services write meanwhile; they wait at most the copy's few seconds.
        source.backup(target)
        # A self-contained file: no -wal beside it (the services turn WAL on again).
        target.execute("PRAGMA journal_mode=DELETE")
        revisions, counts = _sqlite_contents(target)
    finally:
        target.close()
        source.close()
    return _entry(db, dest, revisions, counts)


def _entry(db: Database, dest: Path, revisions: dict[str, str], counts: dict[str, int]
           ) -> dict[str, Any]:
    """What the manifest says of one database's copy."""
    return {"name": db.name, "file": dest.name, "components": list(db.components),
            "sha256": sha256(dest), "bytes": dest.stat().st_size,
            "revisions": revisions, "tables": counts}


def sqlite_in_use(path: Path) -> bool:
    """True when another connection has the file open: a running service keeps its pool's
    connections, and in WAL mode each holds a shared lock that an exclusive one waits for."""
    if not path.exists():
        return False
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


def _sqlite_restore(entry: dict[str, Any], source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(target.name + ".restoring")
    shutil.copyfile(source, staging)
    with open(staging, "rb") as f:
        os.fsync(f.fileno())
    # A stale write-ahead log beside the new file would be applied to it: corruption.
    for suffix in SQLITE_SIDE_FILES:
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    os.replace(staging, target)
    conn = sqlite3.connect(target)
    try:
        _refresh_kept_rows(conn.execute, entry)
        conn.commit()
        _, counts = _sqlite_contents(conn)
    finally:
        conn.close()
    _check_counts(entry, counts)


# --- PostgreSQL -------------------------------------------------------------------------


def libpq_env(url: str) -> dict[str, str]:
    """The PG* variables pg_dump and pg_restore read: no password on a command line."""
    parsed = make_url(url)
    env = {"PGDATABASE": parsed.database or "postgres", "PGHOST": parsed.host or "127.0.0.1",
           "PGPORT": str(parsed.port or 5432)}
    if parsed.username:
        env["PGUSER"] = parsed.username
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    return env


def _async_url(url: str) -> URL:
    return make_url(url).set(drivername="postgresql+asyncpg")


async def _pg_contents(conn: AsyncConnection) -> tuple[dict[str, str], dict[str, int]]:
    tables = (await conn.execute(text(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        " AND table_type = 'BASE TABLE' ORDER BY table_name"))).scalars().all()
    revisions = {}
    for table in tables:
        if table.startswith("alembic_version_"):
            row = (await conn.execute(text(f'SELECT version_num FROM "{table}"'))).first()
            if row:
                revisions[table.removeprefix("alembic_version_")] = row[0]
    counts = {t: (await conn.execute(text(f'SELECT count(*) FROM "{t}"'))).scalar_one()
              for t in tables}
    return revisions, counts


async def _pg_backup(db: Database, dest: Path) -> tuple[dict[str, str], dict[str, int]]:
    engine = create_async_engine(_async_url(db.url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                await conn.execute(text("SET TRANSACTION READ ONLY"))
                snapshot = (await conn.execute(text("SELECT pg_export_snapshot()"))).scalar_one()
                revisions, counts = await _pg_contents(conn)
                # pg_dump reads the very snapshot the counts were read in, while it is open.
                process = await asyncio.create_subprocess_exec(
                    "pg_dump", "-Fc", "--no-owner", f"--snapshot={snapshot}", "-f", str(dest),
                    env={**os.environ, **libpq_env(db.url)}, stderr=subprocess.PIPE)
                _, err = await process.communicate()
                if process.returncode != 0:
                    raise BackupError(f"pg_dump of {db.name} failed: {err.decode()[-2000:]}")
    finally:
        await engine.dispose()
    return revisions, counts


async def pg_other_sessions(url: str) -> list[str]:
    """The other sessions connected to the database: who would see it replaced under them."""
    engine = create_async_engine(_async_url(url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text(
                "SELECT pid, coalesce(nullif(application_name, ''), '?'),"
                " coalesce(host(client_addr), 'local') FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"))).all()
    finally:
        await engine.dispose()
    return [f"pid {pid} ({app}, {addr})" for pid, app, addr in rows]


async def _pg_restore(entry: dict[str, Any], source: Path, url: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
        "-d", libpq_env(url)["PGDATABASE"], str(source),
        env={**os.environ, **libpq_env(url)}, stderr=subprocess.PIPE)
    _, err = await process.communicate()
    if process.returncode != 0:
        raise BackupError(f"pg_restore of {entry['name']} failed: {err.decode()[-2000:]}")
    engine = create_async_engine(_async_url(url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            for statement in _kept_rows_statements(entry):
                await conn.execute(text(statement), {"now": time.time()})
            _, counts = await _pg_contents(conn)
    finally:
        await engine.dispose()
    _check_counts(entry, counts)


# --- both -------------------------------------------------------------------------------


def _kept_rows_statements(entry: dict[str, Any]) -> list[str]:
    """Mark the restored kept outbox rows as published to no broker, just now: the relays
    then publish them all again at start, whatever the broker (a durable Kafka's epoch has
    not changed), before pruning them by age. They may be the only copy of events another
    restored database (or a consumer behind at the time) has not processed yet; consumers
    skip the ones they have."""
    return [f'UPDATE "{table}" SET published_at = :now, broker_epoch = 0'
            for table in entry["tables"] if table.endswith("_outbox_published")]


def _refresh_kept_rows(execute: Callable[..., object], entry: dict[str, Any]) -> None:
    for statement in _kept_rows_statements(entry):
        execute(statement.replace(":now", "?"), (time.time(),))


def _check_counts(entry: dict[str, Any], counts: dict[str, int]) -> None:
    differ = {t: (n, counts.get(t)) for t, n in entry["tables"].items() if counts.get(t) != n}
    if differ:
        raise BackupError(f"{entry['name']} restored with other row counts than the backup's "
                          f"(table: (backup, restored)): {differ}")


def backup(directory: Path, settings: Callable[..., Settings] = Settings) -> dict[str, Any]:
    """Copy every database of the platform into `directory` (new or empty); returns the
    manifest, written last: a directory without one holds no complete backup."""
    if directory.exists() and any(directory.iterdir()):
        raise BackupError(f"{directory} is not empty: a backup goes into a new directory")
    directory.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    entries = []
    databases = platform_databases(settings)
    backend = "sqlite" if all(d.sqlite for d in databases) else "postgresql"
    for db in databases:
        if db.sqlite:
            entries.append(_sqlite_backup(db, directory / f"{db.name}.db"))
        else:
            dest = directory / f"{db.name}.dump"
            entries.append(_entry(db, dest, *asyncio.run(_pg_backup(db, dest))))
    manifest = {"format": FORMAT, "created_at": started.isoformat(),
                "finished_at": datetime.now(UTC).isoformat(), "backend": backend,
                "databases": entries}
    staging = directory / (MANIFEST + ".tmp")
    staging.write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    os.replace(staging, directory / MANIFEST)
    return manifest


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of a backup, checked: every file there with its checksum, and no schema
    revision newer than (unknown to) this code."""
    try:
        manifest: dict[str, Any] = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"no {MANIFEST} in {directory}: not a (complete) backup") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"unknown backup format {manifest.get('format')!r}")
    for entry in manifest["databases"]:
        path = directory / entry["file"]
        if not path.exists():
            raise BackupError(f"{path} is missing")
        if sha256(path) != entry["sha256"]:
            raise BackupError(f"{path} does not match its checksum: damaged or altered")
        for component, revision in entry["revisions"].items():
            if revision not in code_revisions(component):
                raise BackupError(
                    f"{entry['name']}: {component} schema revision {revision} is unknown to "
                    "this code (a backup from a newer version?): restore with that version")
    return manifest


def running_reasons(databases: list[Database], settings: Callable[..., Settings] = Settings
                    ) -> list[str]:
    """Why the platform looks to be running (empty when it is not)."""
    reasons = []
    for service in SERVICE_PORTS:
        s = settings(service=service)
        if port_open(s.host if s.host not in ("0.0.0.0", "::") else "127.0.0.1",
                     s.effective_port()):
            reasons.append(f"{service} answers on port {s.effective_port()}")
    for db in databases:
        if db.sqlite:
            if sqlite_in_use(db.path):
                reasons.append(f"{db.path} is open in another process")
        else:
            sessions = asyncio.run(pg_other_sessions(db.url))
            if sessions:
                reasons.append(f"database {db.name} has other sessions: {', '.join(sessions)}")
    return reasons


def restore(directory: Path, settings: Callable[..., Settings] = Settings) -> dict[str, Any]:
    """Put the backup in `directory` back in place of the platform's databases; returns the
    manifest. Refuses (BackupError) a damaged backup, one from newer code, one made on the
    other backend, and a platform that is running."""
    manifest = read_manifest(directory)
    databases = {d.name: d for d in platform_databases(settings)}
    backend = "sqlite" if all(d.sqlite for d in databases.values()) else "postgresql"
    if manifest["backend"] != backend:
        raise BackupError(f"this backup is of a {manifest['backend']} platform and this one "
                          f"runs on {backend}")
    missing = [e["name"] for e in manifest["databases"] if e["name"] not in databases]
    if missing:
        raise BackupError(f"the backup's databases {missing} are not among this platform's "
                          f"({sorted(databases)}): are FQ_VAR_DIR and FQ_DATABASE_URL the "
                          "ones the backup was made with?")
    reasons = running_reasons(list(databases.values()), settings)
    if reasons:
        raise BackupError("the platform is running; stop every service first: "
                          + "; ".join(reasons))
    for entry in manifest["databases"]:
        db = databases[entry["name"]]
        if db.sqlite:
            _sqlite_restore(entry, directory / entry["file"], db.path)
        else:
            asyncio.run(_pg_restore(entry, directory / entry["file"], db.url))
    return manifest
