"""The case view people mediate from, on the real broker and database with intake, router and
mediation serving on loopback: a grid report's photos and a court referral's cause reach
mediation's GET /v1/cases/{case_id} with every number masked; intake shows the numbers in
clear only through its audited reveal route, to the lead department's key with a reason; a
department key sees what its department needs and no more; an event from before photos and
channel fields is still consumed; an erased case reveals nothing."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from contracts.enums import Channel, Department
from contracts.events import CaseReported, CaseReportedEvent, PartyRef
from contracts.topics import CASE_REPORTED
from kit.auth import KeyStore, Scope
from kit.bus import Producer, Record
from kit.db import create_engine
from tests.infra import AUTH, Broker, eventually, free_port, serve, service_settings

pytestmark = [pytest.mark.integration, pytest.mark.both_backends]

SERVICES = ("intake", "router", "mediation")
# This run's own number: the router counts earlier cases by the phone's hash in a database
# other tests share, and a repeat is routed otherwise.
PHONE = f"139{uuid.uuid4().int % 10**4:04d}5678"  # masked: 139****5678
PLAINTIFF_PHONE = "13800138000"
PLAINTIFF_ID = "330681199003071233"
DEFENDANT_PHONE = "13700137000"
PHOTOS = ["https://grid.example.cn/photos/a1.jpg", "https://grid.example.cn/photos/a2.jpg"]
CLEAR = (PHONE, PLAINTIFF_PHONE, PLAINTIFF_ID, DEFENDANT_PHONE)
REVEAL = Scope.PERSONAL_DATA_REVEAL.value
READ = Scope.CASES_READ.value


@dataclass
class Platform:
    urls: dict[str, str]
    client: httpx.AsyncClient
    keys: KeyStore
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    async def key(self, *scopes: str, **limits: list[str]) -> dict[str, str]:
        _, token = await self.keys.create(f"caseview {'/'.join(scopes)} {limits}",
                                          list(scopes), **limits)
        return {"Authorization": f"Bearer {token}"}

    async def submit(self, channel: str, payload: dict[str, Any]) -> str:
        posted = await self.client.post(f"{self.urls['intake']}/v1/intake/{channel}",
                                        json=payload, headers=AUTH)
        assert posted.status_code == 202, posted.text
        return str(posted.json()["case_id"])

    async def view(self, case_id: str, headers: dict[str, str] = AUTH) -> httpx.Response:
        return await self.client.get(f"{self.urls['mediation']}/v1/cases/{case_id}",
                                     headers=headers)

    async def routed(self, case_id: str) -> dict[str, Any]:
        answer = await eventually(lambda: self.view(case_id), lambda r: r.status_code == 200
                                  and r.json()["status"] == "routed", within=60)
        return dict(answer.json())

    async def reveal(self, case_id: str, headers: dict[str, str], **body: Any
                     ) -> httpx.Response:
        return await self.client.post(
            f"{self.urls['intake']}/v1/intake/cases/{case_id}/personal-data",
            json=body, headers=headers)


@pytest.fixture(scope="module")
async def platform(broker: Broker, database_url: str, run_dir: Path
                   ) -> AsyncIterator[Platform]:
    ports = {name: free_port() for name in SERVICES}
    overrides: dict[str, object] = {
        "rate_limit_per_second": 0, "sms_enabled": False,
        "mediation_url": f"http://127.0.0.1:{ports['mediation']}"}
    if database_url.startswith("sqlite"):
        # One key store for the services, as one PostgreSQL database gives them.
        overrides["auth_database_url"] = f"sqlite+aiosqlite:///{run_dir / 'caseview-auth.db'}"
    settings = {name: service_settings(name, broker.bootstrap, database_url, run_dir,
                                       **overrides) for name in SERVICES}
    apps = {name: importlib.import_module(f"services.{name}.main").create(s)
            for name, s in settings.items()}
    async with AsyncExitStack() as stack:
        urls = {name: await stack.enter_async_context(serve(app, ports[name]))
                for name, app in apps.items()}
        client = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        engine = create_engine(settings["intake"].effective_auth_database_url())
        stack.push_async_callback(engine.dispose)
        yield Platform(urls, client, KeyStore(engine))


def grid_report(tag: str) -> dict[str, Any]:
    return {"report_id": f"CV-GRID-{tag}", "grid_code": "330699101201001",
            "description": "两户村民因宅基地边界争执，已发生推搡。", "event_type": "邻里纠纷",
            "reporter_name": "网格员陈明", "reporter_id": "WG0042",
            "address": "枫桥镇枫源村3组", "location": {"lat": 29.71, "lon": 120.23},
            "people_involved": 2, "photos": PHOTOS,
            "parties": [{"name": "张三", "phone": PHONE, "role": "当事人",
                         "address": "枫源村3组12号"}]}


def court_referral(tag: str) -> dict[str, Any]:
    return {"case_no": f"(2026)浙0681民诉前调{tag}号",
            "summary": "原告借给被告五万元，约定半年归还，到期未还。", "court_code": "ZJ0681",
            "court_name": "诸暨市人民法院", "cause": "民间借贷纠纷", "claim_amount": 50000,
            "referred_at": "2026-11-20T09:00:00+08:00",
            "mediation_deadline": "2026-12-20T17:00:00+08:00",
            "plaintiffs": [{"name": "李四", "phone": PLAINTIFF_PHONE, "id_number": PLAINTIFF_ID,
                            "address": "暨阳街道人民路1号"}],
            "defendants": [{"name": "王五", "phone": DEFENDANT_PHONE}]}


def no_clear_number(answer: httpx.Response) -> None:
    leaked = [number for number in CLEAR if number in answer.text]
    assert leaked == [], f"numbers in clear outside intake: {leaked}"


async def test_a_grid_reports_photos_place_and_fields_show_with_phones_masked(
        platform: Platform) -> None:
    case_id = await platform.submit("grid", grid_report(platform.tag))
    await platform.routed(case_id)
    answer = await platform.view(case_id)
    no_clear_number(answer)
    report = answer.json()["report"]
    assert report["photos"] == PHOTOS
    assert report["location"] == {"lat": 29.71, "lon": 120.23}
    assert report["address"] == "枫桥镇枫源村3组"
    assert report["grid_code"] == "330699101201001"
    assert report["channel_fields"] == {
        "report_id": f"CV-GRID-{platform.tag}", "grid_code": "330699101201001",
        "event_type": "邻里纠纷", "reporter_id": "WG0042", "people_involved": 2}
    assert report["reporter"]["name"] == "网格员陈明"
    [party] = report["parties"]
    assert party == {"person": "parties.0", "name": "张三", "role": "other",
                     "phone_masked": "139****5678", "id_number_masked": None,
                     "address": "枫源村3组12号"}
    assert report["withheld"] == []


async def test_a_court_referrals_cause_and_deadline_show_with_numbers_masked(
        platform: Platform) -> None:
    case_id = await platform.submit("court", court_referral(platform.tag))
    await platform.routed(case_id)
    answer = await platform.view(case_id)
    no_clear_number(answer)
    report = answer.json()["report"]
    fields = report["channel_fields"]
    assert fields["cause"] == "民间借贷纠纷"
    assert fields["court_code"] == "ZJ0681"
    assert fields["court_name"] == "诸暨市人民法院"
    assert fields["claim_amount"] == 50000
    assert datetime.fromisoformat(fields["mediation_deadline"]) == datetime(
        2026, 12, 20, 9, tzinfo=UTC)
    plaintiff, defendant = report["parties"]
    assert (plaintiff["person"], plaintiff["role"], plaintiff["phone_masked"],
            plaintiff["id_number_masked"]) == ("parties.0", "plaintiff", "138****8000",
                                               "330681********1233")
    assert (defendant["person"], defendant["role"], defendant["phone_masked"]) == (
        "parties.1", "defendant", "137****7000")
    assert report["photos"] == []


async def test_the_lead_department_is_shown_the_numbers_with_a_reason_and_it_is_audited(
        platform: Platform) -> None:
    case_id = await platform.submit("court", court_referral(platform.tag + "r"))
    case = await platform.routed(case_id)
    lead = await platform.key(READ, REVEAL, departments=[case["lead_department"]])
    assert (await platform.view(case_id, lead)).json()["personal_data_revealable"] is True

    answer = await platform.reveal(case_id, lead, reason="电话通知双方到场调解")
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json()["people"] == [
        {"person": "parties.0", "name": "李四", "role": "plaintiff",
         "phone": PLAINTIFF_PHONE, "id_number": PLAINTIFF_ID},
        {"person": "parties.1", "name": "王五", "role": "defendant",
         "phone": DEFENDANT_PHONE, "id_number": None}]
    one = await platform.reveal(case_id, lead, reason="只联系被告", person="parties.1")
    assert [p["phone"] for p in one.json()["people"]] == [DEFENDANT_PHONE]

    log = await platform.client.get(f"{platform.urls['intake']}/v1/intake/personal-data/"
                                    "reveals", params={"case_id": case_id}, headers=AUTH)
    assert log.status_code == 200, log.text
    entries = log.json()["items"]
    assert [(e["person"], e["reason"], e["outcome"]) for e in entries] == [
        ("parties.1", "只联系被告", "revealed"), (None, "电话通知双方到场调解", "revealed")]
    assert all(e["key_name"].startswith("caseview") for e in entries)


async def test_a_reveal_without_a_reason_or_the_scope_or_the_case_is_refused(
        platform: Platform) -> None:
    case_id = await platform.submit("court", court_referral(platform.tag + "x"))
    case = await platform.routed(case_id)
    involved = {case["lead_department"], *case["cooperating_departments"]}
    other = next(d.value for d in Department if d.value not in involved)
    lead = await platform.key(READ, REVEAL, departments=[case["lead_department"]])
    without_scope = await platform.key(READ, departments=[case["lead_department"]])
    elsewhere = await platform.key(READ, REVEAL, departments=[other])

    missing = await platform.reveal(case_id, lead)
    assert missing.status_code == 422
    assert [f["field"] for f in missing.json()["fields"]] == ["reason"]
    blank = await platform.reveal(case_id, lead, reason="   ")
    assert blank.status_code == 422
    assert [f["field"] for f in blank.json()["fields"]] == ["reason"]
    assert (await platform.reveal(case_id, without_scope, reason="看看")).status_code == 403
    assert (await platform.view(case_id, without_scope)).json()[
        "personal_data_revealable"] is False
    # Another department's key does not see the case in mediation: 404 there and here.
    assert (await platform.view(case_id, elsewhere)).status_code == 404
    refused = await platform.reveal(case_id, elsewhere, reason="看看")
    assert refused.status_code == 404
    no_clear_number(refused)
    assert (await platform.reveal("FQ20990101-NOSUCHCASEAAAA", AUTH,
                                  reason="核对")).status_code == 404

    log = await platform.client.get(f"{platform.urls['intake']}/v1/intake/personal-data/"
                                    "reveals", params={"case_id": case_id}, headers=AUTH)
    assert [e["outcome"] for e in log.json()["items"]] == ["not_found"]


async def test_a_cooperating_department_sees_names_not_numbers_and_reveals_nothing(
        platform: Platform) -> None:
    case_id = await platform.submit("grid", grid_report(platform.tag + "c"))
    case = await platform.routed(case_id)
    # Neighbours pushing each other: a village's mediators lead, the police cooperate.
    assert case["cooperating_departments"], "routed to one department: nothing to test"
    cooperating = await platform.key(READ, REVEAL,
                                     departments=[case["cooperating_departments"][0]])
    overview = await platform.key(READ, REVEAL, jurisdictions=[case["jurisdiction_code"][:6]])
    seen = (await platform.view(case_id, cooperating)).json()
    [party] = seen["report"]["parties"]
    assert party["name"] == "张三"
    assert (party["phone_masked"], party["address"]) == (None, None)
    assert seen["report"]["photos"] == PHOTOS
    assert "parties.phone_masked" in seen["report"]["withheld"]
    assert seen["personal_data_revealable"] is False
    assert (await platform.reveal(case_id, cooperating, reason="看看")).status_code == 403
    # A key limited to the county (a leader, a dispatcher) sees the parties but no photos.
    seen = (await platform.view(case_id, overview)).json()
    assert seen["report"]["photos"] == []
    assert seen["report"]["withheld"] == ["photos"]
    assert seen["report"]["parties"][0]["phone_masked"] == "139****5678"
    revealed = await platform.reveal(case_id, overview, reason="督办核实")
    assert revealed.status_code == 200, revealed.text
    assert revealed.json()["people"][0]["phone"] == PHONE


async def test_a_reported_event_without_photos_or_channel_fields_is_still_consumed(
        platform: Platform, producer: Producer) -> None:
    case_id = f"FQ20261120-OLDEVENT{platform.tag.upper()}"[:64]
    event = CaseReportedEvent.wrap(CaseReported(
        case_id=case_id, channel=Channel.HOTLINE_12345, external_id=f"OLD-{platform.tag}",
        received_at=datetime(2026, 11, 20, 1, tzinfo=UTC), text="楼上邻居夜里噪音扰民",
        reporter=PartyRef(name="赵女士", role="reporter", phone_masked="135****0000")),
        source="intake", subject=case_id)
    raw = orjson.loads(event.model_dump_json())
    for name in ("photos", "channel_fields"):  # as intake wrote them before this change
        del raw["data"][name]
    await producer.send_all([Record(topic=CASE_REPORTED, value=orjson.dumps(raw),
                                    key=case_id)])
    case = await platform.routed(case_id)
    assert case["report"]["photos"] == []
    assert case["report"]["channel_fields"] == {}
    assert case["report"]["reporter"]["phone_masked"] == "135****0000"


async def test_an_erased_case_reveals_nothing(platform: Platform) -> None:
    tag = platform.tag + "e"
    case_id = await platform.submit("hotline_12345", {
        "order_no": f"CV-ERASE-{tag}", "content": "邻居占用楼道堆放杂物",
        "received_at": "2026-11-20T08:00:00+08:00", "caller_name": "钱女士",
        "caller_phone": "13600136000"})
    await platform.routed(case_id)
    assert (await platform.reveal(case_id, AUTH, reason="回访")).json()["people"][0][
        "phone"] == "13600136000"
    erased = await platform.client.post(
        f"{platform.urls['mediation']}/v1/personal-data/erase", headers=AUTH,
        json={"phone": "13600136000", "legal_basis": f"测试删除申请 {tag}"})
    assert erased.status_code == 200, erased.text
    assert case_id in erased.json()["case_ids"]
    gone = await eventually(lambda: platform.reveal(case_id, AUTH, reason="回访"),
                            lambda r: r.status_code == 410, within=30)
    assert gone.json()["error"] == "personal_data_erased"
    assert "13600136000" not in gone.text
    assert (await platform.view(case_id)).json()["personal_data_revealable"] is False


async def test_without_mediation_a_department_key_is_told_to_retry_and_nothing_is_shown(
        platform: Platform, broker: Broker, database_url: str, run_dir: Path) -> None:
    case_id = await platform.submit("court", court_referral(platform.tag + "m"))
    case = await platform.routed(case_id)
    lead = await platform.key(READ, REVEAL, departments=[case["lead_department"]])
    overrides: dict[str, object] = {"rate_limit_per_second": 0,
                                    "mediation_url": f"http://127.0.0.1:{free_port()}"}
    if database_url.startswith("sqlite"):
        overrides["auth_database_url"] = f"sqlite+aiosqlite:///{run_dir / 'caseview-auth.db'}"
    # A second intake on the same database whose mediation does not answer.
    lonely = importlib.import_module("services.intake.main").create(
        service_settings("intake", broker.bootstrap, database_url, run_dir, **overrides))
    async with serve(lonely) as url:
        answer = await platform.client.post(f"{url}/v1/intake/cases/{case_id}/personal-data",
                                            json={"reason": "电话通知"}, headers=lead)
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "5"
    no_clear_number(answer)
