"""API keys: hashed storage, scopes, limits, revocation; request size limits."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import select

from kit.auth import KeyStore, api_keys
from kit.db import create_engine
from services.intake.main import create
from tests.infra import AUTH, Broker, serve, service_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def intake(broker: Broker, database_url: str, run_dir: Path) -> AsyncIterator[str]:
    settings = service_settings("intake", broker.bootstrap, database_url, run_dir,
                                max_body_bytes=64 * 1024)
    async with serve(create(settings)) as url:
        yield url


@pytest.fixture(scope="module")
async def keys(intake: str, database_url: str, run_dir: Path) -> AsyncIterator[KeyStore]:
    url = service_settings("intake", "", database_url, run_dir).effective_auth_database_url()
    engine = create_engine(url)
    yield KeyStore(engine)
    await engine.dispose()


def order(no: str) -> dict[str, str]:
    return {"order_no": no, "content": "噪音扰民", "received_at": "2026-11-20T08:00:00+08:00"}


async def test_a_key_is_stored_only_as_its_hash(keys: KeyStore) -> None:
    key_id, token = await keys.create("hotline", ["intake:write"])
    assert keys.engine is not None
    async with keys.engine.connect() as conn:
        row = (await conn.execute(select(api_keys).where(api_keys.c.key_id == key_id))).one()
    assert token not in str(dict(row._mapping))
    assert row.key_hash != token and len(row.key_hash) == 64


async def test_scopes_channel_limits_and_revocation(intake: str, keys: KeyStore,
                                                    unique: str) -> None:
    _, writer = await keys.create("hotline system", ["intake:write"])
    _, reader = await keys.create("dashboard", ["cases:read"])
    _, grid_only = await keys.create("grid platform", ["intake:write"], channels=["grid"])

    async def post(token: str, no: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=intake) as client:
            return await client.post("/v1/intake/hotline_12345", json=order(no),
                                     headers={"Authorization": f"Bearer {token}"})

    assert (await post(writer, f"A{unique}")).status_code == 202
    forbidden = await post(reader, f"B{unique}")
    assert forbidden.status_code == 403
    assert "intake:write" in forbidden.json()["message"]
    assert (await post(grid_only, f"C{unique}")).status_code == 403
    key_id = next(k["key_id"] for k in await keys.list() if k["name"] == "hotline system")
    assert await keys.revoke(str(key_id))
    # The service caches a lookup for a few seconds; a fresh store sees the revocation now.
    assert await KeyStore(keys.engine).principal(writer) is None


async def test_a_body_over_the_limit_is_413_before_it_is_read(intake: str) -> None:
    big = {"order_no": "BIG", "content": "字" * 40_000,
           "received_at": "2026-11-20T08:00:00+08:00"}
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        declared = await client.post("/v1/intake/hotline_12345", json=big)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b" " * 1024

        streamed = await client.post("/v1/intake/hotline_12345", content=chunks(),
                                     headers={"content-type": "application/json"})
    assert declared.status_code == 413
    assert declared.json()["error"] == "payload_too_large"
    assert streamed.status_code == 413


def test_keys_cli_creates_lists_and_revokes(tmp_path: Path) -> None:
    env = {"FQ_AUTH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/auth.db", "PATH": ""}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kit.cli", "keys", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    created = cli("create", "--name", "grid", "--scope", "intake:write", "--channel", "grid")
    assert created.returncode == 0, created.stderr
    made = orjson.loads(created.stdout)
    assert made["key"].startswith("fq_")
    listed = cli("list")
    assert made["key_id"] in listed.stdout and made["key"] not in listed.stdout
    assert cli("revoke", made["key_id"]).returncode == 0
    assert cli("revoke", made["key_id"]).returncode == 1
    bad = cli("create", "--name", "x", "--scope", "everything")
    assert bad.returncode == 2 and "unknown scopes" in bad.stderr
