"""The restore drill: the four services as processes on a broker and database of their own
take and work cases; `fengqiao backup` copies the platform while it runs and takes more; then
everything stops, the data is wiped, `fengqiao restore` puts the backup back and the platform
starts again on a new (empty) broker. Every case from before the backup is there as it was,
the cases the copies caught in flight are finished by the outbox replay, new cases are taken,
and nothing happened twice."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from kit.settings import SERVICE_PORTS
from tests.infra import AUTH, ROOT, Isolated, eventually, free_port, serve, service_processes

# Four services started twice: on a loaded 2-core machine that alone can take minutes.
pytestmark = [pytest.mark.e2e, pytest.mark.both_backends, pytest.mark.timeout(600)]

BEFORE, DURING, AFTER, NEW = 100, 10, 10, 10
# Kept published rows are what a restored platform replays to its new broker.
ENV = {"FQ_OUTBOX_RETENTION_SECONDS": "3600"}
# Time order of the history, not the ids: compared as each service reads them back.
HISTORY = ("SELECT case_id, version, from_status, to_status, actor, reason FROM "
           "mediation_case_history ORDER BY case_id, version")


class Drill:
    """The platform under the drill: where its data lives and how to run the CLI on it."""

    def __init__(self, isolated: Isolated) -> None:
        self.isolated = isolated
        self.var = isolated.directory / "var"
        self.sqlite = isolated.database_url.startswith("sqlite")
        self.ports = {name: free_port() for name in SERVICE_PORTS}

    def url(self, service: str) -> str:
        if self.sqlite:
            return f"sqlite+aiosqlite:///{self.var / f'{service}.db'}"
        return self.isolated.database_url

    async def query(self, service: str, sql: str) -> list[tuple[Any, ...]]:
        # No pool: a connection left open would (rightly) stop the restore.
        engine = create_async_engine(self.url(service), poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                return [tuple(r) for r in (await conn.execute(text(sql))).all()]
        finally:
            await engine.dispose()

    async def cli(self, *args: str) -> tuple[int, str]:
        env = {**os.environ, "FQ_VAR_DIR": str(self.var)}
        if not self.sqlite:
            env["FQ_DATABASE_URL"] = self.isolated.database_url
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "kit.cli", *args, env=env, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await process.communicate()
        return process.returncode or 0, out.decode()

    async def wipe(self) -> None:
        if self.sqlite:
            for path in self.var.glob("*.db*"):
                path.unlink()
            return
        engine = create_async_engine(self.isolated.database_url, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("DROP SCHEMA public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
        finally:
            await engine.dispose()


def order(n: int, tag: str) -> dict[str, Any]:
    return {"order_no": f"DRILL-{tag}-{n:04d}",
            "content": f"楼上邻居装修噪音扰民，多次协商未果（第{n}号）。",
            "received_at": "2026-11-23T09:30:00+08:00", "caller_phone": f"139{n:08d}",
            "category": "邻里纠纷"}


async def take(client: httpx.AsyncClient, intake: str, tag: str, count: int) -> list[str]:
    limit = asyncio.Semaphore(10)

    async def one(n: int) -> str:
        async with limit:
            r = await client.post(intake + "/v1/intake/hotline_12345", json=order(n, tag))
        assert r.status_code == 202, r.text
        return str(r.json()["case_id"])

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def move(client: httpx.AsyncClient, mediation: str, case_id: str,
               steps: list[tuple[str, dict[str, Any]]]) -> None:
    case = (await client.get(f"{mediation}/v1/cases/{case_id}")).json()
    version = case["version"]
    for to, data in steps:
        r = await client.post(f"{mediation}/v1/cases/{case_id}/transitions", json={
            "to_status": to, "actor": "演练员", "reason": "drill", "expected_version": version,
            "data": data})
        assert r.status_code == 200, r.text
        version = r.json()["case"]["version"]


ACCEPT = [("accepted", {"mediator": "王调解员"})]
CLOSE = [("in_mediation", {}), ("resolved", {"agreement": "双方约定施工时间",
                                             "agreement_amount": 0}), ("closed", {})]


async def routed(drill: Drill, case_ids: list[str], within: float = 60.0) -> None:
    wanted = set(case_ids)

    async def fetch() -> set[str]:
        rows = await drill.query("mediation", "SELECT case_id FROM mediation_cases "
                                 "WHERE status <> 'reported'")
        return wanted - {r[0] for r in rows}

    await eventually(fetch, lambda missing: not missing, within)


async def doubled(drill: Drill) -> dict[str, list[tuple[Any, ...]]]:
    """Anything that happened twice: a history step, a case, a decision, a delivery."""
    return {
        "history": await drill.query("mediation", (
            "SELECT case_id, version, count(*) FROM mediation_case_history "
            "GROUP BY case_id, version HAVING count(*) > 1")),
        "steps": await drill.query("mediation", (
            "SELECT case_id, to_status, count(*) FROM mediation_case_history "
            "GROUP BY case_id, to_status HAVING count(*) > 1")),
        "cases": await drill.query("mediation", (
            "SELECT channel, external_id, count(*) FROM mediation_cases "
            "GROUP BY channel, external_id HAVING count(*) > 1")),
        "decisions": await drill.query("router", (
            "SELECT case_id, count(*) FROM router_decisions GROUP BY case_id "
            "HAVING count(*) > 1")),
        "deliveries": await drill.query("notify", (
            "SELECT case_id, subscription_id, kind, count(*) FROM notify_deliveries "
            "GROUP BY case_id, subscription_id, kind HAVING count(*) > 1")),
    }


class Receiver:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request) -> Response:
            self.ids.append(request.headers.get("webhook-id", ""))
            return Response(status_code=204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    r = Receiver()
    async with serve(r.app) as url:
        yield r, url + "/hook"


async def test_a_backup_restored_after_a_wipe_brings_every_case_back_once(
        isolated: Isolated, receiver: tuple[Receiver, str]) -> None:
    started = time.monotonic()
    drill = Drill(isolated)
    hook, hook_url = receiver
    backup_dir = isolated.directory / "backup"
    with service_processes(drill.ports, bootstrap=isolated.broker.bootstrap,
                           database_url=isolated.database_url, var=drill.var, env=ENV, ready_within=180) as s:
        urls = {name: p.url for name, p in s.items()}
        async with httpx.AsyncClient(headers=AUTH, timeout=30) as client:
            sub = await client.post(urls["notify"] + "/v1/subscriptions", json={
                "name": "drill", "url": hook_url, "kinds": ["routed", "lifecycle"]})
            assert sub.status_code == 201, sub.text
            before = await take(client, urls["intake"], "before", BEFORE)
            await routed(drill, before)
            await asyncio.gather(*(move(client, urls["mediation"], c, ACCEPT)
                                   for c in before[:30]))
            await asyncio.gather(*(move(client, urls["mediation"], c, CLOSE)
                                   for c in before[:10]))
            history = [r for r in await drill.query("mediation", HISTORY) if r[0] in before]
            decisions = await drill.query("router", "SELECT case_id, routing_round, decision "
                                          "FROM router_decisions ORDER BY case_id")

            # The backup runs while cases keep coming in.
            during = asyncio.ensure_future(take(client, urls["intake"], "during", DURING))
            code, out = await drill.cli("backup", str(backup_dir))
            assert code == 0, out
            during_ids = await during
            manifest = json.loads((backup_dir / "manifest.json").read_text())
            assert {c for d in manifest["databases"] for c in d["components"]} == {
                *SERVICE_PORTS, "auth"}
            assert all(d["revisions"] for d in manifest["databases"])
            code, out = await drill.cli("restore", str(backup_dir))
            assert code == 1 and "running" in out, out

            # Work after the backup: lost by the restore.
            after = await take(client, urls["intake"], "after", AFTER)
            await asyncio.gather(*(move(client, urls["mediation"], c, CLOSE)
                                   for c in before[10:20]))
            await routed(drill, [*during_ids, *after])
    isolated.broker.stop()
    await drill.wipe()

    code, out = await drill.cli("restore", str(backup_dir))
    assert code == 0, out
    # A new, empty broker: the embedded Tansu after a restart.
    isolated.broker.start()
    await isolated.broker.ready_with_topics()
    with service_processes(drill.ports, bootstrap=isolated.broker.bootstrap,
                           database_url=isolated.database_url, var=drill.var, env=ENV, ready_within=180) as s:
        urls = {name: p.url for name, p in s.items()}
        async with httpx.AsyncClient(headers=AUTH, timeout=30) as client:
            # Every case from before the backup, as it was then (the steps after it lost).
            restored = [r for r in await drill.query("mediation", HISTORY) if r[0] in before]
            assert restored == history
            now_decisions = {r[0]: r for r in await drill.query(
                "router", "SELECT case_id, routing_round, decision FROM router_decisions")}
            assert all(now_decisions[d[0]] == d for d in decisions)
            case = (await client.get(f"{urls['mediation']}/v1/cases/{before[0]}")).json()
            assert [h["to_status"] for h in case["history"]] == [
                "reported", "routed", "accepted", "in_mediation", "resolved", "closed"]
            case = (await client.get(f"{urls['mediation']}/v1/cases/{before[15]}")).json()
            assert case["status"] == "accepted", "closed after the backup: lost"

            # The platform resumes by itself: whatever intake holds reaches mediation.
            async def unfinished() -> set[str]:
                taken = {r[0] for r in await drill.query("intake",
                                                         "SELECT case_id FROM intake_cases")}
                done = {r[0] for r in await drill.query(
                    "mediation", "SELECT case_id FROM mediation_cases WHERE status <> "
                    "'reported'")}
                return taken - done

            await eventually(unfinished, lambda missing: not missing, 60)
            intake_ids = {r[0] for r in await drill.query("intake",
                                                          "SELECT case_id FROM intake_cases")}
            assert set(before) <= intake_ids
            assert not intake_ids & set(after), "taken after the backup: lost"

            new = await take(client, urls["intake"], "new", NEW)
            await routed(drill, new)
            await asyncio.sleep(2)  # time for anything doubled to show
            assert await doubled(drill) == {"history": [], "steps": [], "cases": [],
                                            "decisions": [], "deliveries": []}
            deliveries = await drill.query("notify", "SELECT count(*) FROM notify_deliveries "
                                           "WHERE kind = 'routed'")
            assert deliveries[0][0] >= BEFORE + NEW
    print(f"\nrestore drill: {time.monotonic() - started:.1f}s, "
          f"{len(hook.ids)} webhook messages received")
