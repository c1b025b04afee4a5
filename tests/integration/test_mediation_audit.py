"""The audit log over real HTTP: every case read, every list (its filters and count) and
every transition is recorded with the key that made it, readable at GET /v1/audit with
scope audit:read, newest first, filtered and paged; limited keys read only their cases'."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.enums import Department
from kit.auth import Scope
from services.mediation.main import create
from tests.infra import AUTH, Broker, serve, service_settings
from tests.integration.test_mediation_lifecycle import Mediation
from tests.integration.test_mediation_seeding import CaseSpec

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def mediation(broker: Broker, database_url: str, run_dir: Path
                    ) -> AsyncIterator[Mediation]:
    app = create(service_settings("mediation", broker.bootstrap, database_url, run_dir))
    async with serve(app) as url:
        yield Mediation(app, url)


async def key(mediation: Mediation, scopes: list[Scope], **limits: Any
              ) -> tuple[str, dict[str, str]]:
    key_id, token = await mediation.runtime.keys.create(
        "audit test", [s.value for s in scopes], **limits)
    return key_id, {"Authorization": f"Bearer {token}"}


async def audit(client: httpx.AsyncClient, headers: dict[str, str] | None = None,
                **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/v1/audit", params=params, headers=headers or AUTH)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_reads_lists_and_transitions_are_recorded_with_the_key(mediation: Mediation
                                                                     ) -> None:
    spec = CaseSpec(lead=Department.JUDICIAL_OFFICE)
    await mediation.seed(spec)
    clerk_id, clerk = await key(mediation, [Scope.CASES_READ, Scope.CASES_WRITE])
    started = datetime.now(UTC)
    async with httpx.AsyncClient(base_url=mediation.url, timeout=30) as client:
        read = await client.get(f"/v1/cases/{spec.case_id}", headers=clerk)
        assert read.status_code == 200
        listed = await client.get("/v1/cases", headers=clerk, params={
            "lead_department": "judicial_office", "text": "噪音", "limit": 7})
        assert listed.status_code == 200
        moved = await client.post(f"/v1/cases/{spec.case_id}/transitions", headers=clerk, json={
            "to_status": "accepted", "actor": "司法所 李调解员", "expected_version": 2})
        assert moved.status_code == 200, moved.text
        refused = await client.post(f"/v1/cases/{spec.case_id}/transitions", headers=clerk,
                                    json={"to_status": "accepted", "actor": "x",
                                          "expected_version": 2})
        assert refused.status_code == 409
        missing = await client.get("/v1/cases/no-such-case", headers=clerk)
        assert missing.status_code == 404

        mine = await audit(client, key_id=clerk_id)
    assert [e["action"] for e in mine] == ["transition", "list", "read"], "newest first"
    transition, listing, reading = mine
    assert all(e["key_id"] == clerk_id and e["key_name"] == "audit test" for e in mine)
    assert all(started - timedelta(seconds=1) <= datetime.fromisoformat(e["at"])
               <= datetime.now(UTC) for e in mine)
    assert reading["case_id"] == transition["case_id"] == spec.case_id
    assert transition["detail"] == {"from_status": "routed", "to_status": ["accepted"],
                                    "version": 3, "actor": "司法所 李调解员"}
    assert listing["case_id"] is None
    assert listing["detail"]["query"] == {"lead_department": "judicial_office", "text": "噪音"}
    assert listing["detail"]["count"] == len(listed.json()["items"])


async def test_the_log_is_filtered_and_paged_newest_first(mediation: Mediation) -> None:
    spec = CaseSpec()
    await mediation.seed(spec)
    async with httpx.AsyncClient(base_url=mediation.url, headers=AUTH, timeout=30) as client:
        for _ in range(3):
            assert (await client.get(f"/v1/cases/{spec.case_id}")).status_code == 200
        entries = await audit(client, case_id=spec.case_id, action="read")
        assert len(entries) == 3 and all(e["key_id"] == "dev" for e in entries)
        ids = [e["id"] for e in entries]
        assert ids == sorted(ids, reverse=True)
        first = await client.get("/v1/audit", params={"case_id": spec.case_id, "limit": 2})
        page = first.json()
        assert [e["id"] for e in page["items"]] == ids[:2]
        rest = await audit(client, case_id=spec.case_id, limit=2, cursor=page["next_cursor"])
        assert [e["id"] for e in rest] == ids[2:]
        later = await audit(client, case_id=spec.case_id,
                            at_from=(datetime.now(UTC) + timedelta(minutes=1)).isoformat())
        assert later == []
        assert await audit(client, case_id=spec.case_id, action="transition") == []
        bad = await client.get("/v1/audit", params={"action": "delete"})
        assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "query.action"


async def test_only_audit_readers_and_admins_read_the_log_and_limited_ones_their_cases(
        mediation: Mediation) -> None:
    ours = CaseSpec(lead=Department.HEALTH)
    theirs = CaseSpec(lead=Department.EDUCATION)
    await mediation.seed(ours, theirs)
    _, reader = await key(mediation, [Scope.CASES_READ, Scope.STATS_READ])
    _, auditor = await key(mediation, [Scope.AUDIT_READ])
    _, health_auditor = await key(mediation, [Scope.AUDIT_READ], departments=["health"])
    async with httpx.AsyncClient(base_url=mediation.url, headers=AUTH, timeout=30) as client:
        for spec in (ours, theirs):
            assert (await client.get(f"/v1/cases/{spec.case_id}")).status_code == 200
        refused = await client.get("/v1/audit", headers=reader)
        assert refused.status_code == 403 and "audit:read" in refused.json()["message"]
        assert (await client.get("/v1/audit", headers={"Authorization": ""})).status_code == 401
        for spec in (ours, theirs):
            assert await audit(client, auditor, case_id=spec.case_id)
        assert await audit(client, health_auditor, case_id=ours.case_id)
        assert await audit(client, health_auditor, case_id=theirs.case_id) == []
        everything = await audit(client, health_auditor, limit=500)
        assert theirs.case_id not in {e["case_id"] for e in everything}
        assert all(e["action"] != "list" for e in everything)
