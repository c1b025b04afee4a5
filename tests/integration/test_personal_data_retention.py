"""Retention on the real broker and database: a case archived longer than the retention loses
its personal data in every service's tables (names, phone and id numbers, addresses, photo
links, the same in free text; identity hashes), by mediation's leader job and the
case.personal_data_erased.v1 consumers, while GET /v1/stats answers the same figures. A case
not yet due keeps its data; a second run erases nothing more; the erasure is audited and
counted."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import MetaData, select
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from kit.erasure import ERASED
from kit.settings import SERVICE_PORTS, Settings
from services.mediation.retention import PersonalDataRetention
from tests.infra import AUTH, Isolated, eventually, free_port, serve, service_settings

pytestmark = [pytest.mark.both_backends]

ARCHIVE = [("accepted", {"mediator": "王调解员"}), ("in_mediation", {}),
           ("resolved", {"agreement": "欧阳娜娜与楼上住户约定三日内修复，联系电话{phone}",
                         "agreement_amount": 3000}),
           ("closed", {}), ("visited", {"visit_notes": "回访欧阳娜娜，电话{phone}，表示满意"}),
           ("rated", {"satisfaction": 5}), ("archived", {})]


@dataclass
class Person:
    name: str
    phone: str
    id_number: str
    address: str
    photo: str

    def strings(self) -> list[str]:
        return [self.name, self.phone, self.id_number, self.address, self.photo,
                f"{self.phone[:3]}****{self.phone[-4:]}"]

    def order(self, order_no: str) -> dict[str, Any]:
        return {"order_no": order_no, "received_at": "2026-11-23T09:30:00+08:00",
                "content": f"我叫{self.name}，电话{self.phone}，身份证{self.id_number}，住在"
                           f"{self.address}，楼上漏水到我家，照片见{self.photo}",
                "caller_name": self.name, "caller_phone": self.phone,
                "address": self.address, "category": "邻里纠纷"}


ARCHIVED = Person("欧阳娜娜", "13912345678", "330106199003071234", "杭州市西湖区文三路88号",
                  "https://img.example.com/p/leak-1.jpg")
KEPT = Person("司马相如", "13787654321", "330106198511020017", "杭州市上城区清河坊12号",
              "https://img.example.com/p/keep-2.jpg")


@dataclass
class Platform:
    apps: dict[str, FastAPI]
    urls: dict[str, str]
    settings: dict[str, Settings]

    async def rows(self, service: str) -> list[str]:
        """Every row of every table of the service's database, as text."""
        engine = create_async_engine(self.settings[service].effective_database_url(),
                                     poolclass=NullPool)
        texts = []
        try:
            async with engine.connect() as conn:
                meta = MetaData()
                await conn.run_sync(meta.reflect)
                for table in meta.sorted_tables:
                    for row in (await conn.execute(select(table))).all():
                        texts.append(f"{table.name}: " + " | ".join(
                            v.decode("utf-8", "replace") if isinstance(v, bytes)
                            else orjson.dumps(v, default=str).decode() if v is not None
                            else "" for v in row))
        finally:
            await engine.dispose()
        return texts


@pytest.fixture(scope="module")
async def platform(isolated: Isolated) -> AsyncIterator[Platform]:
    ports = {name: free_port() for name in SERVICE_PORTS}
    settings = {name: service_settings(
        name, isolated.broker.bootstrap, isolated.database_url, isolated.directory,
        sms_enabled=False, intake_url=f"http://127.0.0.1:{ports['intake']}")
        for name in SERVICE_PORTS}
    apps = {name: importlib.import_module(f"services.{name}.main").create(s)
            for name, s in settings.items()}
    async with AsyncExitStack() as stack:
        urls = {name: await stack.enter_async_context(serve(app, ports[name]))
                for name, app in apps.items()}
        yield Platform(apps, urls, settings)


def leaks(rows: list[str], person: Person) -> list[str]:
    # Intake keeps the work order's number and the hash of its content: facts, not a person.
    return [row for row in rows if any(s in row for s in person.strings())]


async def test_an_archived_case_past_retention_keeps_no_personal_data_and_the_figures_stay(
        platform: Platform) -> None:
    urls = platform.urls
    tag = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(headers=AUTH, timeout=30) as client:
        sub = await client.post(urls["notify"] + "/v1/subscriptions", json={
            "name": "retention", "url": "http://127.0.0.1:9/hook",
            "kinds": ["routed", "lifecycle"]})
        assert sub.status_code == 201, sub.text
        ids = []
        for person, n in ((ARCHIVED, 1), (KEPT, 2)):
            r = await client.post(urls["intake"] + "/v1/intake/hotline_12345",
                                  json=person.order(f"RET-{tag}-{n}"))
            assert r.status_code == 202, r.text
            ids.append(r.json()["case_id"])
        archived, kept = ids

        async def case(case_id: str) -> dict[str, Any]:
            r = await client.get(f"{urls['mediation']}/v1/cases/{case_id}")
            return dict(r.json()) if r.status_code == 200 else {}

        for case_id in ids:
            await eventually(lambda c=case_id: case(c), lambda c: c.get("status") == "routed")
        version = (await case(archived))["version"]
        for to, data in ARCHIVE:
            data = {k: v.format(phone=ARCHIVED.phone) if isinstance(v, str) else v
                    for k, v in data.items()}
            r = await client.post(f"{urls['mediation']}/v1/cases/{archived}/transitions",
                                  json={"to_status": to, "actor": "测试员", "data": data,
                                        "reason": f"与{ARCHIVED.name}沟通", "expected_version": version})
            assert r.status_code == 200, r.text
            version = r.json()["case"]["version"]

        async def notify_status() -> list[str]:
            return [row for row in await platform.rows("notify")
                    if row.startswith("notify_cases") and archived in row]

        await eventually(notify_status, lambda rows: bool(rows) and '"archived"' in rows[0])
        assert leaks(await platform.rows("intake"), ARCHIVED), "the data is there before"
        stats = await client.get(urls["mediation"] + "/v1/stats",
                                 params={"group_by": ["category", "department", "month"]})
        assert stats.status_code == 200, stats.text

        runtime = platform.apps["mediation"].state.runtime
        retention = PersonalDataRetention(runtime)
        assert await retention.erase_due(datetime.now(UTC)) == 0, "not due yet"
        later = datetime.now(UTC) + retention.retention + timedelta(days=1)
        assert await retention.erase_due(later) == 1
        assert await retention.erase_due(later) == 0, "erased once"

        async def left() -> dict[str, list[str]]:
            return {s: leaks(await platform.rows(s), ARCHIVED) for s in SERVICE_PORTS}

        await eventually(left, lambda found: not any(found.values()), within=60)
        assert leaks(await platform.rows("intake"), KEPT), "a case not due keeps its data"
        assert not [r for r in await platform.rows("router")
                    if r.startswith("router_identity_hashes") and archived in r]
        assert [r for r in await platform.rows("router")
                if r.startswith("router_identity_hashes") and kept in r]

        after = await client.get(urls["mediation"] + "/v1/stats",
                                 params={"group_by": ["category", "department", "month"]})
        assert after.json() == stats.json()
        body = await case(archived)
        assert (body["status"], body["category"], body["lead_department"]) == (
            "archived", "neighbor", (await case(kept))["lead_department"])
        assert ERASED in body["text"] and "楼上漏水" in body["text"]
        assert [h["to_status"] for h in body["history"]][-1] == "archived"

        audit = await client.get(urls["mediation"] + "/v1/audit",
                                 params={"case_id": archived})
        assert [e["detail"] for e in audit.json()["items"] if e["action"] == "erase"] == [
            {"reason": "retention"}]
        metrics = (await client.get(urls["mediation"] + "/metrics")).text
        assert 'fq_personal_data_erased_total{reason="retention",service="mediation"}' in metrics


P = Person("慕容复", "13655501234", "330106197707070013", "杭州市拱墅区湖墅南路5号",
           "https://img.example.com/p/p-3.jpg")
Q = Person("段誉", "13566602345", "330106198808080016", "杭州市滨江区江南大道9号",
           "https://img.example.com/p/q-4.jpg")


async def test_a_persons_export_lists_their_cases_only_and_an_erasure_removes_them(
        platform: Platform) -> None:
    urls = platform.urls
    tag = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(headers=AUTH, timeout=30) as client:
        both = await client.post(urls["intake"] + "/v1/intake/walk_in", json={
            "visit_id": f"PD-{tag}-1", "address": P.address,
            "content": f"{P.name}与{Q.name}因宅基地界线争执，{Q.name}电话{Q.phone}",
            "visitor": {"name": P.name, "phone": P.phone, "id_number": P.id_number},
            "parties": [{"name": Q.name, "role": "被申请人", "phone": Q.phone,
                         "address": Q.address}]})
        assert both.status_code == 202, both.text
        own = await client.post(urls["intake"] + "/v1/intake/hotline_12345",
                                json=P.order(f"PD-{tag}-2"))
        other = await client.post(urls["intake"] + "/v1/intake/hotline_12345",
                                  json=Q.order(f"PD-{tag}-3"))
        ids = [r.json()["case_id"] for r in (both, own, other)]

        async def routed() -> set[str]:
            got = set()
            for case_id in ids:
                r = await client.get(f"{urls['mediation']}/v1/cases/{case_id}")
                if r.status_code == 200 and r.json()["status"] == "routed":
                    got.add(case_id)
            return got

        await eventually(routed, lambda got: got == set(ids))

        for bad, field in (({}, "body"), ({"phone": "12"}, "phone"),
                           ({"id_number": "330106197707070010"}, "id_number")):
            r = await client.post(urls["mediation"] + "/v1/personal-data/export", json=bad)
            assert r.status_code == 422, r.text
            assert field in r.text
        spaced = f"+86 {P.phone[:3]} {P.phone[3:7]} {P.phone[7:]}"
        export = await client.post(urls["mediation"] + "/v1/personal-data/export",
                                   json={"phone": spaced})
        assert export.status_code == 200, export.text
        cases = export.json()["cases"]
        assert sorted(c["case_id"] for c in cases) == sorted(ids[:2]), (ids, export.text)
        assert all(role["name"] == P.name for c in cases for role in c["roles"])
        assert not [s for s in Q.strings() if s in export.text], "nothing about anyone else"
        [walk_in] = [c for c in cases if c["case_id"] == ids[0]]
        assert "宅基地界线争执" in walk_in["text"] and P.name in walk_in["text"]

        erased = await client.post(urls["mediation"] + "/v1/personal-data/erase", json={
            "phone": P.phone, "legal_basis": "个人信息删除申请 2026-001"})
        assert erased.status_code == 200, erased.text
        assert sorted(erased.json()["case_ids"]) == sorted(ids[:2])
        again = await client.post(urls["mediation"] + "/v1/personal-data/export",
                                  json={"id_number": P.id_number})
        assert again.json()["cases"] == [], "nothing left to find"

        async def left() -> dict[str, list[str]]:
            return {s: leaks(await platform.rows(s), P) for s in SERVICE_PORTS}

        await eventually(left, lambda found: not any(found.values()), within=60)
        assert [r for r in await platform.rows("intake") if ids[2] in r and Q.phone in r], \
            "another person's own case keeps their data"
        audit = await client.get(urls["mediation"] + "/v1/audit", params={"case_id": ids[0]})
        assert [e["detail"] for e in audit.json()["items"] if e["action"] == "erase"] == [
            {"reason": "request"}]
