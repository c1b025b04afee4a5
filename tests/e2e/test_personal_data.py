"""Personal data stays private: reports full of phone, id and bank card numbers, written
every way people write them (139-1234-5678, +86 139 1234 5678, full-width digits, grouped
id numbers, landlines with area codes), go through the whole platform (REST, batches,
Kafka-native intake, Open311; routing; mediation steps whose free text a mediator filled
with numbers; staff searching for a number; webhooks, hotline result feedback and SMS),
then every log line of every service, every event on every topic, every notification
body, the SMS log, the API's answers and every row of every database table outside
intake's are searched for the numbers in clear, in any of those forms. None may appear.
Run on SQLite and on PostgreSQL (when a server answers).

Intake's raw topics (intake.<channel>.v1) are not searched: they carry the source systems'
own payloads, numbers included, by contract. The one subscription here is not authorised
for personal data (only an admin may authorise one, and it then gets the phone by design)."""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI, Request, Response

from contracts.channels import id_number_check_character
from contracts.topics import intake_topic
from kit.privacy import shadow
from kit.settings import SERVICE_PORTS
from tests.infra import (
    AUTH,
    Isolated,
    eventually,
    free_port,
    serve,
    service_processes,
)

pytestmark = pytest.mark.e2e

# The patterns of a mainland mobile and a resident id number, not inside a longer run of
# letters and digits (a hex hash may hold eleven digits in a row by chance).
MOBILE = re.compile(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])")
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")


FULL_WIDTH = str.maketrans({str(i): chr(0xFF10 + i) for i in range(10)})
# Separators between digits, as the leak search takes them out again.
BETWEEN_DIGITS = re.compile(r"(?<=[0-9])[ \-.()]{1,3}(?=[0-9])")


def plain(text: str) -> str:
    """The text with full-width digits in ASCII and separators between digits removed: a
    number in clear is in it as its bare digits, whatever form it was written in."""
    return BETWEEN_DIGITS.sub("", shadow(text)).upper()


@dataclass
class Numbers:
    """Fresh numbers for this run, so that a leak can be told from anything else; each is
    issued in one of the forms people write it, and searched for in all of them."""

    rng: random.Random = field(default_factory=random.Random)
    issued: list[str] = field(default_factory=list)

    def _written(self, groups: list[str], prefixes: tuple[str, ...] = ("",)) -> str:
        separator = self.rng.choice(["", " ", "-", ".", "－", "\u3000"])
        text = self.rng.choice(prefixes) + separator.join(groups)
        return text.translate(FULL_WIDTH) if self.rng.random() < 0.2 else text

    def phone(self, plain_form: bool = False) -> str:
        number = f"1{self.rng.choice('3456789')}{self.rng.randrange(10**9):09d}"
        self.issued.append(number)
        if plain_form:
            return number
        return self._written([number[:3], number[3:7], number[7:]],
                             ("", "", "+86 ", "0086", "86-", "(+86)"))

    def landline(self) -> str:
        area = self.rng.choice(["0575", "0571", "010", "021"])
        number = f"{self.rng.randrange(2, 10)}{self.rng.randrange(10**7):07d}"
        self.issued.append(area + number)
        return self.rng.choice([f"{area}-{number}", f"({area}){number}", f"{area} {number}",
                                f"（{area}）{number[:4]}-{number[4:]}"])

    def id_number(self, plain_form: bool = False) -> str:
        born = f"19{self.rng.randrange(50, 99)}0{self.rng.randrange(1, 9)}1{self.rng.randrange(9)}"
        first17 = f"330699{born}{self.rng.randrange(1000):03d}"
        number = first17 + id_number_check_character(first17)
        self.issued.append(number)
        if plain_form or self.rng.random() < 0.3:
            return number.lower() if number.endswith("X") and self.rng.random() < 0.5 \
                else number
        return self._written([number[:6], number[6:14], number[14:]])

    def bank_card(self) -> str:
        number = "6222" + "".join(str(self.rng.randrange(10)) for _ in range(15))
        self.issued.append(number)
        return self._written([number[i:i + 4] for i in range(0, len(number), 4)])

    def leaks(self, text: str) -> list[str]:
        found = set(MOBILE.findall(text)) | set(ID_NUMBER.findall(text))
        bare = plain(text)
        found |= {n for n in self.issued if n in bare}
        return sorted(found)


class Receiver:
    """Webhook receiver and hotline callback on loopback: keeps every body it is sent."""

    def __init__(self) -> None:
        self.webhooks: list[bytes] = []
        self.feedback: list[bytes] = []
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request) -> Response:
            self.webhooks.append(await request.body())
            return Response(status_code=204)

        @self.app.post("/callback")
        async def callback(request: Request) -> Response:
            self.feedback.append(await request.body())
            return Response(status_code=200)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    r = Receiver()
    async with serve(r.app) as url:
        yield r, url


def party(numbers: Numbers, name: str, role: str | None = None) -> dict[str, Any]:
    return {"name": name, "phone": numbers.phone(), "id_number": numbers.id_number(),
            **({"role": role} if role else {})}


def traffic(numbers: Numbers, run: str, callback: str) -> dict[str, list[dict[str, Any]]]:
    """Reports per channel with numbers in every place a source may put them."""
    def text(what: str) -> str:
        return (f"{what}，联系电话{numbers.phone()}，身份证号{numbers.id_number()}，"
                f"另一位当事人手机 {numbers.phone()}，座机{numbers.landline()}，"
                f"欠款打到卡号{numbers.bank_card()}。")

    return {
        "hotline_12345": [{"order_no": f"PD-H{i}-{run}", "content": text("邻居噪音扰民"),
                           "received_at": "2026-11-23T09:00:00+08:00",
                           "caller_name": "张三", "caller_phone": numbers.phone(),
                           "callback_url": callback} for i in range(3)],
        "grid": [{"report_id": f"PD-G{i}-{run}", "grid_code": "330699001001001",
                  "description": text("占道经营"), "parties": [party(numbers, "李四")]}
                 for i in range(2)],
        "police": [{"incident_no": f"PD-P-{run}", "summary": text("两车刮擦发生口角"),
                    "parties": [party(numbers, "王五"), party(numbers, "赵六")]}],
        "court": [{"case_no": f"PD-C-{run}", "summary": text("民间借贷纠纷"),
                   "claim_amount": 80000, "plaintiffs": [party(numbers, "钱七")],
                   "defendants": [party(numbers, "孙八")]}],
        "petition": [{"petition_no": f"PD-X-{run}", "content": text("拖欠工资集体上访"),
                      "petitioners": [party(numbers, "周九")]}],
        "walk_in": [{"content": text("宅基地界纠纷"), "visitor": party(numbers, "吴十")}],
    }


async def _all_events(bootstrap: str) -> dict[str, list[bytes]]:
    """Every message on every topic but intake's raw ones, read to the end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    try:
        topics = sorted(t for t in await consumer.topics() if not t.startswith("intake."))
        partitions = [TopicPartition(t, p) for t in topics
                      for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: dict[str, list[bytes]] = {t: [] for t in topics}
        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in partitions])

        while await behind():
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for r in records:
                    headers = b" ".join(v for _, v in r.headers or ())
                    found[tp.topic].append(b" ".join((r.key or b"", r.value or b"", headers)))
        return found
    finally:
        await consumer.stop()


def _rows_text(values: Any) -> str:
    """A row's cells as text; bytes (event payloads, delivery bodies) decoded."""
    cells = []
    for value in values:
        if isinstance(value, memoryview):
            value = bytes(value)
        cells.append(value.decode(errors="replace") if isinstance(value, bytes) else str(value))
    return " ".join(cells)


def _sqlite_rows(var: Path) -> dict[str, list[str]]:
    """Every row of every table in every service's SQLite file but intake's."""
    found: dict[str, list[str]] = {}
    for path in sorted(var.glob("*.db")):
        if path.name == "intake.db":
            continue
        with sqlite3.connect(path) as db:
            tables = [r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                found[f"table {path.stem}.{table}"] = [
                    _rows_text(row) for row in db.execute(f'SELECT * FROM "{table}"')]
    return found


async def _postgres_rows(database_url: str) -> dict[str, list[str]]:
    """Every row of every table in the database but intake's (intake_*)."""
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        tables = [r["tablename"] for r in await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        found = {}
        for table in tables:
            if table.startswith("intake_"):
                continue
            found[f"table {table}"] = [_rows_text(row.values()) for row in
                                       await connection.fetch(f'SELECT * FROM "{table}"')]
        return found
    finally:
        await connection.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_no_phone_or_id_number_in_clear_in_logs_events_or_notifications(
        isolated: Isolated, run_dir: Path,
        receiver: tuple[Receiver, str], backend: str) -> None:
    if backend == "postgresql" and isolated.database_url.startswith("sqlite"):
        pytest.skip("no PostgreSQL server answers")
    database_url = isolated.database_url if backend == "postgresql" else "sqlite"
    hooks, receiver_url = receiver
    numbers = Numbers()
    run = f"{random.randrange(16**8):08x}"
    var = run_dir / f"personal-data-{run}"
    ports = {name: free_port() for name in SERVICE_PORTS}
    env = {"FQ_INTAKE_URL": f"http://127.0.0.1:{ports['intake']}",
           "FQ_DELIVERY_BACKOFF_BASE_SECONDS": "0.2", "FQ_LOG_LEVEL": "DEBUG"}
    api_answers: list[str] = []
    with service_processes(ports, bootstrap=isolated.broker.bootstrap,
                           database_url=database_url, var=var, env=env) as started:
        urls = {name: s.url for name, s in started.items()}
        async with httpx.AsyncClient(headers=AUTH, timeout=30) as client:
            sub = await client.post(urls["notify"] + "/v1/subscriptions", json={
                "name": "every event", "url": receiver_url + "/hook",
                "kinds": ["routed", "lifecycle", "supervision"]})
            assert sub.status_code == 201, sub.text
            case_ids = []
            reports = traffic(numbers, run, receiver_url + "/callback")
            for channel, payloads in reports.items():
                for payload in payloads:
                    posted = await client.post(f"{urls['intake']}/v1/intake/{channel}",
                                               json=payload)
                    assert posted.status_code == 202, posted.text
                    case_ids.append(posted.json()["case_id"])
            batch = await client.post(urls["intake"] + "/v1/intake/grid/batch", json={
                "items": [{"report_id": f"PD-B{i}-{run}", "grid_code": "330699001001002",
                           "description": f"楼道堆物，住户电话{numbers.phone()}",
                           "parties": [party(numbers, "郑十一")]} for i in range(5)]
                + [{"report_id": f"PD-bad-{run}", "grid_code": "1",
                    "description": f"无效，电话{numbers.phone()}"}]})
            assert batch.json()["accepted"] == 5 and batch.json()["invalid"] == 1
            case_ids += [r["case_id"] for r in batch.json()["results"] if r["case_id"]]
            refused = await client.post(urls["intake"] + "/v1/intake/hotline_12345", json={
                "order_no": f"PD-bad-{run}", "content": "x", "received_at": "2026-11-23",
                "caller_phone": numbers.phone(plain_form=True)[:-1],
                "caller_id": numbers.id_number()})
            assert refused.status_code == 422
            api_answers.append(refused.text)
            filed = await client.post(urls["intake"] + "/open311/v2/requests.json", data={
                "service_code": "neighbor", "description": f"噪音扰民，请联系{numbers.phone()}",
                "address_string": "江滨路1号", "phone": numbers.phone(), "first_name": "陈"})
            assert filed.status_code == 201, filed.text
            case_ids.append(filed.json()[0]["service_request_id"])
            producer = AIOKafkaProducer(bootstrap_servers=isolated.broker.bootstrap, acks="all")
            await producer.start()
            try:
                await producer.send_and_wait(intake_topic("hotline_12345"), orjson.dumps({
                    "order_no": f"PD-K-{run}", "content": f"电动车被盗，电话{numbers.phone()}",
                    "received_at": "2026-11-23T10:00:00+08:00",
                    "caller_phone": numbers.phone()}))
                await producer.send_and_wait(intake_topic("grid"), orjson.dumps({
                    "report_id": f"PD-K-{run}", "description": f"缺少网格，电话{numbers.phone()}"}))
            finally:
                await producer.stop()

            async def routed() -> list[dict[str, Any]]:
                views = []
                for case_id in case_ids:
                    view = await client.get(f"{urls['mediation']}/v1/cases/{case_id}")
                    views.append(view.json() if view.status_code == 200 else {})
                return views

            views = await eventually(routed, lambda vs: all(v.get("status") == "routed"
                                                            for v in vs), within=60)
            kafka_case = await eventually(
                lambda: client.get(urls["mediation"] + "/v1/cases",
                                   params={"external_id": f"PD-K-{run}"}),
                lambda r: len(r.json()["items"]) == 1, within=60)
            api_answers.append(kafka_case.text)

            # Mediators type numbers into the free text of steps; hotline cases are closed
            # (result feedback to the hotline, an SMS to the caller).
            notes = f"已电话联系当事人{numbers.phone()}，核对身份证{numbers.id_number()}"
            steps = [("accepted", {"mediator": f"王调解员 {numbers.phone()}", "notes": notes}),
                     ("in_mediation", {"notes": notes}),
                     ("resolved", {"agreement": f"双方和解，联系人{numbers.phone()}",
                                   "agreement_amount": 0}),
                     ("closed", {"notes": notes})]
            hotline_cases = [v for v in views if v["channel"] == "hotline_12345"]
            for view in hotline_cases:
                version = view["version"]
                for to_status, data in steps:
                    moved = await client.post(
                        f"{urls['mediation']}/v1/cases/{view['case_id']}/transitions", json={
                            "to_status": to_status, "expected_version": version, "data": data,
                            "actor": f"调解员{numbers.phone()}",
                            "reason": f"当事人来电 {numbers.phone()}"})
                    assert moved.status_code == 200, moved.text
                    version = moved.json()["case"]["version"]
                    api_answers.append(moved.text)

            def closures() -> int:
                return sum(1 for body in hooks.webhooks
                           if orjson.loads(body)["data"].get("to_status") == "closed")

            await eventually(lambda: asyncio.sleep(0, closures()),
                             lambda n: n >= len(hotline_cases), within=60)
            await eventually(lambda: asyncio.sleep(0, len(hooks.feedback)),
                             lambda n: n >= len(hotline_cases), within=60)
            for case_id in case_ids:
                api_answers.append((await client.get(
                    f"{urls['mediation']}/v1/cases/{case_id}")).text)
            api_answers.append((await client.get(urls["notify"] + "/v1/deliveries",
                                                 params={"limit": 500})).text)
            api_answers.append((await client.get(
                urls["intake"] + "/open311/v2/requests.json")).text)
            # Staff search for a caller's number as they heard it: the search terms go to
            # the audit log, which must keep them masked.
            for search in ({"text": numbers.phone()}, {"external_id": numbers.phone()},
                           {"text": numbers.id_number()}):
                searched = await client.get(urls["mediation"] + "/v1/cases", params=search)
                assert searched.status_code in (200, 422), searched.text
                api_answers.append(searched.text)
            audit = await client.get(urls["mediation"] + "/v1/audit", params={"limit": 500})
            api_answers.append(audit.text)
    # The services have stopped: their logs are complete.

    places: dict[str, list[str]] = {}
    logs = sorted(var.glob("*.log"))
    assert {f"{name}-{port}.log" for name, port in ports.items()} | {"sms.log"} <= {
        p.name for p in logs}
    for path in logs:
        lines = path.read_text(errors="replace").splitlines()
        assert lines, f"{path.name} is empty"
        places[f"log {path.name}"] = lines
    events = await _all_events(isolated.broker.bootstrap)
    for topic in ("case.reported.v1", "case.routed.v1", "case.lifecycle.v1"):
        assert len(events[topic]) >= len(case_ids), topic
    for topic, values in events.items():
        places[f"topic {topic}"] = [v.decode(errors="replace") for v in values]
    places["webhook bodies"] = [b.decode() for b in hooks.webhooks]
    places["hotline feedback bodies"] = [b.decode() for b in hooks.feedback]
    places["API answers"] = api_answers
    tables = (await _postgres_rows(database_url) if backend == "postgresql"
              else _sqlite_rows(var))
    assert any("mediation_audit" in name for name in tables), sorted(tables)
    places.update(tables)

    leaks = [f"{where}: {', '.join(found)} in {line[:200]}"
             for where, lines in places.items() for line in lines
             if (found := numbers.leaks(line))]
    scanned = sum(len(lines) for lines in places.values())
    print(f"\npersonal data: {len(numbers.issued)} numbers sent in {len(case_ids)} cases; "
          f"{scanned} log lines, events, notifications and answers searched")
    assert len(hooks.webhooks) > len(case_ids) and hooks.feedback
    assert not leaks, f"{len(leaks)} number(s) in clear:\n" + "\n".join(leaks[:40])
