"""`fengqiao backup` and `restore` on the embedded default's files, without services: the
manifest says what was copied; a restore refuses a damaged backup, one from newer code, a
database file another process has open, and a directory that is not empty; a restore
replaces the files, removes stale write-ahead logs, and marks the kept outbox rows for a
replay."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from kit.backup import BackupError, backup, code_revisions, restore
from kit.settings import SERVICE_PORTS, Settings
from tests.infra import free_port

COMPONENTS = (*SERVICE_PORTS, "auth")


def make_platform(var: Path) -> partial[Settings]:
    """A var dir with one file per component: its schema revision, a kept outbox row."""
    var.mkdir(parents=True, exist_ok=True)
    for component in COMPONENTS:
        conn = sqlite3.connect(var / f"{component}.db")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"CREATE TABLE alembic_version_{component} (version_num TEXT)")
        conn.execute(f"INSERT INTO alembic_version_{component} VALUES (?)",
                     (sorted(code_revisions(component))[0],))
        conn.execute(f"CREATE TABLE {component}_outbox_published (id INTEGER PRIMARY KEY, "
                     "published_at REAL, broker_epoch INTEGER)")
        conn.execute(f"INSERT INTO {component}_outbox_published VALUES (1, 1.0, 42)")
        conn.commit()
        conn.close()
    # Nothing listens there: the port check has nothing to find.
    return partial(Settings, var_dir=var, port=free_port())


def test_a_backup_and_its_restore_over_a_wiped_var_dir(tmp_path: Path) -> None:
    settings = make_platform(tmp_path / "var")
    manifest = backup(tmp_path / "backup", settings)
    assert {d["name"] for d in manifest["databases"]} == set(COMPONENTS)
    saved = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    intake = next(d for d in saved["databases"] if d["name"] == "intake")
    assert intake["tables"] == {"alembic_version_intake": 1, "intake_outbox_published": 1}
    assert intake["revisions"]["intake"] in code_revisions("intake")
    assert len(intake["sha256"]) == 64

    for path in (tmp_path / "var").iterdir():
        path.unlink()
    (tmp_path / "var" / "intake.db-wal").write_bytes(b"stale")
    restore(tmp_path / "backup", settings)
    assert not (tmp_path / "var" / "intake.db-wal").exists()
    conn = sqlite3.connect(tmp_path / "var" / "intake.db")
    published_at, epoch = conn.execute(
        "SELECT published_at, broker_epoch FROM intake_outbox_published").fetchone()
    conn.close()
    assert epoch == 0 and published_at > time.time() - 60, "kept rows replayed, not pruned"


def test_a_backup_goes_into_a_new_directory(tmp_path: Path) -> None:
    settings = make_platform(tmp_path / "var")
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "old").write_text("x")
    with pytest.raises(BackupError, match="not empty"):
        backup(tmp_path / "backup", settings)


def test_a_damaged_backup_is_refused(tmp_path: Path) -> None:
    settings = make_platform(tmp_path / "var")
    backup(tmp_path / "backup", settings)
    with open(tmp_path / "backup" / "router.db", "r+b") as f:
        f.seek(200)
        f.write(b"\x00damaged")
    with pytest.raises(BackupError, match="checksum"):
        restore(tmp_path / "backup", settings)


def test_a_backup_from_newer_code_is_refused(tmp_path: Path) -> None:
    settings = make_platform(tmp_path / "var")
    conn = sqlite3.connect(tmp_path / "var" / "mediation.db")
    conn.execute("UPDATE alembic_version_mediation SET version_num = 'f00dfeedbeef'")
    conn.commit()
    conn.close()
    backup(tmp_path / "backup", settings)
    with pytest.raises(BackupError, match="f00dfeedbeef is unknown to this code"):
        restore(tmp_path / "backup", settings)


def test_a_database_open_in_another_process_is_not_overwritten(tmp_path: Path) -> None:
    settings = make_platform(tmp_path / "var")
    backup(tmp_path / "backup", settings)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time\n"
        f"c = sqlite3.connect({str(tmp_path / 'var' / 'notify.db')!r})\n"
        "c.execute('SELECT 1 FROM notify_outbox_published').fetchall()\n"
        "print('open', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"open\n"
        with pytest.raises(BackupError, match=r"notify\.db is open in another process"):
            restore(tmp_path / "backup", settings)
    finally:
        holder.kill()
        holder.wait()
    restore(tmp_path / "backup", settings)
