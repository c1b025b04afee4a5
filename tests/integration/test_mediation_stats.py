"""The centres' figures checked against hand-computed ones on a seeded data set: counted by
the database on SQLite and PostgreSQL alike, grouped by every dimension, over HTTP as JSON
and as the CSV of the monthly report. Also the case gauges, counted on the same data."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from contracts.api_mediation import StatsDimension
from contracts.enums import Category, Channel, Department, Risk, Status, Tier
from kit import migrate
from kit.db import create_engine, session_factory
from kit.settings import Settings
from services.mediation import store
from services.mediation.domain.figures import CaseCounts
from services.mediation.handlers import CaseEvents
from services.mediation.main import create
from services.mediation.store import C, metadata
from tests.infra import (
    AUTH,
    Broker,
    create_pg_database,
    drop_pg_database,
    serve,
    service_settings,
)
from tests.integration.test_mediation_seeding import CaseSpec, runtime_of, seed, walk

pytestmark = pytest.mark.integration

S = Status
CST = timezone(timedelta(hours=8))
FEBRUARY = (datetime(2024, 2, 1, tzinfo=CST), datetime(2024, 3, 1, tzinfo=CST))
CLOSED_LOOP = [S.ACCEPTED, S.IN_MEDIATION, S.RESOLVED, S.CLOSED, S.VISITED, S.RATED]


def cst(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=CST)


@dataclass
class Seeded:
    name: str
    spec: dict[str, Any]
    path: list[Status] = field(default_factory=list)
    satisfaction: int | None = None


# February 2024 in China Standard Time, and one case either side of it. "Now" for the
# steps is today, so a case is on time when its resolve_by is far ahead (FAR) and late
# when it was in 2024.
DATASET = [
    Seeded("A", dict(channel=Channel.HOTLINE_12345, received_at=cst(2024, 2, 1, 0, 30),
                     jurisdiction="330106001001"), [*CLOSED_LOOP, S.ARCHIVED], 5),
    Seeded("B", dict(channel=Channel.HOTLINE_12345, received_at=cst(2024, 2, 5, 7, 0),
                     jurisdiction="330106001002", prior_related=1,
                     resolve_by=cst(2024, 2, 20)), CLOSED_LOOP, 3),
    Seeded("C", dict(channel=Channel.GRID, received_at=cst(2024, 2, 6, 10), tier=Tier.TOWN,
                     lead=Department.JUDICIAL_OFFICE, category=Category.DEBT_FINANCE,
                     jurisdiction="330106001"),
           [S.ACCEPTED, S.IN_MEDIATION, S.FAILED, S.REFERRED]),
    Seeded("D", dict(channel=Channel.COURT, received_at=cst(2024, 2, 13, 9), tier=Tier.TOWN,
                     lead=Department.JUDICIAL_OFFICE, cooperating=[Department.COURT],
                     category=Category.DEBT_FINANCE, jurisdiction="330106002001"),
           CLOSED_LOOP, 4),
    Seeded("E", dict(channel=Channel.COURT, received_at=cst(2024, 2, 14, 9), tier=Tier.TOWN,
                     lead=Department.JUDICIAL_OFFICE, cooperating=[Department.COURT],
                     category=Category.DEBT_FINANCE, jurisdiction="330106002002",
                     prior_related=2, resolve_by=cst(2024, 2, 20)), [S.ACCEPTED]),
    Seeded("F", dict(channel=Channel.COURT, received_at=cst(2024, 2, 20, 9), tier=Tier.COUNTY,
                     lead=Department.HR_SOCIAL_SECURITY, cooperating=[Department.COURT],
                     category=Category.LABOR, risk=Risk.RED, accept_by=cst(2024, 2, 20, 11))),
    Seeded("G", dict(channel=Channel.POLICE, received_at=cst(2024, 2, 21, 9), tier=Tier.TOWN,
                     lead=Department.TRAFFIC_POLICE, cooperating=[Department.POLICE_STATION],
                     category=Category.TRAFFIC_ACCIDENT, jurisdiction="330106002003",
                     resolve_by=cst(2024, 2, 22)), [S.WITHDRAWN, S.CLOSED]),
    Seeded("H", dict(channel=Channel.WALK_IN, received_at=cst(2024, 2, 27, 9), tier=Tier.TOWN,
                     lead=Department.WOMENS_FEDERATION, category=Category.MARRIAGE_FAMILY,
                     jurisdiction="330106002004", prior_related=1, resolve_by=cst(2024, 2, 1)),
           [S.ACCEPTED, S.IN_MEDIATION, S.FAILED]),
    Seeded("I", dict(channel=Channel.GRID, received_at=cst(2024, 2, 29, 23),
                     jurisdiction="330106002005"), [S.ACCEPTED, S.IN_MEDIATION, S.RESOLVED]),
    Seeded("X1", dict(received_at=cst(2024, 1, 31, 23, 59), accept_by=cst(2024, 2, 1, 23, 59))),
    Seeded("X2", dict(received_at=cst(2024, 3, 1, 0, 0), accept_by=cst(2024, 3, 2))),
]

# By hand, from the table above (cases A to I).
TOTAL = CaseCounts(received=9, mediated=6, resolved=4, closed=5, closed_resolved=3,
                   closed_on_time=3, rated=3, satisfaction_sum=12, satisfied=2,
                   court_received=3, court_mediated=1, repeats=3,
                   reports=9)  # no report merged: every report is a matter
BY_CHANNEL = {
    "court": CaseCounts(received=3, mediated=1, resolved=1, closed=1, closed_resolved=1,
                        closed_on_time=1, rated=1, satisfaction_sum=4, satisfied=1,
                        court_received=3, court_mediated=1, repeats=1, reports=3),
    "grid": CaseCounts(received=2, mediated=2, resolved=1, closed=1, closed_on_time=1,
                       reports=2),
    "hotline_12345": CaseCounts(received=2, mediated=2, resolved=2, closed=2, closed_resolved=2,
                                closed_on_time=1, rated=2, satisfaction_sum=8, satisfied=1,
                                repeats=1, reports=2),
    "police": CaseCounts(received=1, closed=1, reports=1),
    "walk_in": CaseCounts(received=1, mediated=1, repeats=1, reports=1),
}


async def seed_dataset(sessions: async_sessionmaker[AsyncSession], events: CaseEvents,
                       prefix: str) -> dict[str, str]:
    """Seed DATASET; returns each row's case id."""
    ids = {}
    for row in DATASET:
        spec = CaseSpec(case_id=f"{prefix}{row.name}", **row.spec)
        ids[row.name] = spec.case_id
        await seed(sessions, events, [spec])
        await walk(sessions, spec.case_id, row.path,
                   {S.RATED: {"satisfaction": row.satisfaction}} if row.satisfaction else None)
    return ids


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def dataset(request: pytest.FixtureRequest, database_url: str, run_dir: Path
                  ) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The data set alone in a fresh database of each kind."""
    pg_name = None
    if request.param == "postgresql":
        if database_url.startswith("sqlite"):
            pytest.skip("no PostgreSQL server here")
        url, pg_name = await create_pg_database()
    else:
        url = f"sqlite+aiosqlite:///{run_dir / f'stats-{uuid.uuid4().hex[:8]}.db'}"
    engine = create_engine(url)
    await migrate.upgrade(engine, "mediation", metadata)
    sessions = session_factory(engine)
    await seed_dataset(sessions, CaseEvents(Settings(service="mediation")), "S")
    yield sessions
    await engine.dispose()
    if pg_name:
        await drop_pg_database(pg_name)


FEBRUARY_WHERE = [C.received_at >= FEBRUARY[0], C.received_at < FEBRUARY[1]]


async def counts(sessions: async_sessionmaker[AsyncSession], *dims: StatsDimension,
                 level: str | None = None) -> dict[tuple[str | None, ...], CaseCounts]:
    async with sessions() as session:
        rows = await store.count_cases(session, list(dims), FEBRUARY_WHERE, level)
    return {tuple(group.values()): c for group, c in rows}


async def test_the_totals_match_the_hand_count(
        dataset: async_sessionmaker[AsyncSession]) -> None:
    assert await counts(dataset) == {(): TOTAL}


async def test_by_channel(dataset: async_sessionmaker[AsyncSession]) -> None:
    assert await counts(dataset, StatsDimension.CHANNEL) == {
        (k,): v for k, v in BY_CHANNEL.items()}


async def test_periods_are_china_time_and_weeks_start_on_monday(
        dataset: async_sessionmaker[AsyncSession]) -> None:
    weeks = await counts(dataset, StatsDimension.WEEK)
    assert {k[0]: v.received for k, v in weeks.items()} == {
        "2024-01-29": 1, "2024-02-05": 2, "2024-02-12": 2, "2024-02-19": 2, "2024-02-26": 2}
    days = await counts(dataset, StatsDimension.DAY)
    # A at 00:30 on 1 February in Beijing (still 31 January in UTC); I on the leap day.
    assert {"2024-02-01", "2024-02-05", "2024-02-29"} <= {k[0] for k in days}
    assert "2024-01-31" not in {k[0] for k in days}
    assert await counts(dataset, StatsDimension.MONTH) == {("2024-02",): TOTAL}


async def test_by_department_tier_category_and_jurisdiction(
        dataset: async_sessionmaker[AsyncSession]) -> None:
    departments = await counts(dataset, StatsDimension.DEPARTMENT)
    assert {k[0]: v.received for k, v in departments.items()} == {
        "village_mediation": 3, "judicial_office": 3, "hr_social_security": 1,
        "traffic_police": 1, "womens_federation": 1}
    assert departments[("judicial_office",)].closed_resolved == 1
    tiers = await counts(dataset, StatsDimension.TIER)
    assert {k[0]: v.received for k, v in tiers.items()} == {"village": 3, "town": 5,
                                                             "county": 1}
    categories = await counts(dataset, StatsDimension.CATEGORY)
    assert categories[("debt_finance",)].received == 3
    towns = await counts(dataset, StatsDimension.JURISDICTION, level="town")
    assert {k[0]: v.received for k, v in towns.items()} == {"330106001": 3, "330106002": 5,
                                                             None: 1}
    by_month_and_channel = await counts(dataset, StatsDimension.MONTH, StatsDimension.CHANNEL)
    assert by_month_and_channel == {("2024-02", k): v for k, v in BY_CHANNEL.items()}


async def test_gauges_count_open_and_overdue_cases_by_tier_and_department(
        dataset: async_sessionmaker[AsyncSession]) -> None:
    async with dataset() as session:
        groups, red = await store.case_gauges(session, datetime(2024, 2, 25, tzinfo=UTC))
    assert {(t, d): (n, o) for t, d, n, o in groups} == {
        ("town", "judicial_office"): (1, 1),        # E: resolution overdue
        ("county", "hr_social_security"): (1, 1),   # F: red, not accepted in time
        ("town", "womens_federation"): (1, 0),      # H: failed, no clock runs
        ("village", "village_mediation"): (3, 1),   # I resolved, X1 late, X2 not yet due
    }
    assert red == 1


# --- over HTTP -----------------------------------------------------------------------------

@dataclass
class Served:
    url: str
    court_key: dict[str, str]    # stats:read, limited to the court's cases
    reader_key: dict[str, str]   # cases:read only


@pytest.fixture(scope="module")
async def mediation(broker: Broker, database_url: str, run_dir: Path
                    ) -> AsyncIterator[Served]:
    app = create(service_settings("mediation", broker.bootstrap, database_url, run_dir))
    async with serve(app) as url:
        runtime = runtime_of(app)
        await seed_dataset(runtime.sessions, CaseEvents(runtime.settings),
                           f"H{uuid.uuid4().hex[:8]}")
        court = (await runtime.keys.create("court", ["stats:read"], departments=["court"]))[1]
        reader = (await runtime.keys.create("reader", ["cases:read"]))[1]
        yield Served(url, {"Authorization": f"Bearer {court}"},
                     {"Authorization": f"Bearer {reader}"})


FEBRUARY_PARAMS = {"received_from": "2024-02-01", "received_to": "2024-03-01"}


async def test_stats_over_http_give_the_figures_by_definition(mediation: Served) -> None:
    async with httpx.AsyncClient(base_url=mediation.url, headers=AUTH) as client:
        r = await client.get("/v1/stats", params={**FEBRUARY_PARAMS, "group_by": "channel"})
    assert r.status_code == 200, r.text
    body = r.json()
    total = body["total"]
    assert {k: total[k] for k in TOTAL.__dict__} == TOTAL.__dict__
    assert total["resolution_rate"] == pytest.approx(3 / 5)
    assert total["closure_rate"] == pytest.approx(5 / 9)
    assert total["on_time_rate"] == pytest.approx(3 / 5)
    assert total["satisfaction_mean"] == pytest.approx(4.0)
    assert total["satisfaction_share_4_5"] == pytest.approx(2 / 3)
    assert total["diversion_rate"] == pytest.approx(1 / 3)
    assert total["success_rate"] == pytest.approx(4 / 6)
    assert total["repeat_rate"] == pytest.approx(3 / 9)
    rows = {row["group"]["channel"]: row for row in body["rows"]}
    assert set(rows) == set(BY_CHANNEL)
    assert rows["police"]["resolution_rate"] == 0 and rows["police"]["on_time_rate"] == 0
    assert rows["walk_in"]["resolution_rate"] is None  # nothing closed: no denominator
    assert datetime.fromisoformat(body["received_from"]) == FEBRUARY[0]


async def test_a_department_key_gets_the_figures_of_its_cases_only(mediation: Served) -> None:
    async with httpx.AsyncClient(base_url=mediation.url, headers=mediation.court_key) as client:
        r = await client.get("/v1/stats", params=FEBRUARY_PARAMS)
    assert r.status_code == 200, r.text
    total = r.json()["total"]
    # The court cooperates on D, E and F.
    assert (total["received"], total["court_received"], total["court_mediated"]) == (3, 3, 1)
    assert total["diversion_rate"] == pytest.approx(1 / 3)


async def test_the_monthly_report_csv_has_chinese_and_english_headers(mediation: Served) -> None:
    async with httpx.AsyncClient(base_url=mediation.url, headers=AUTH) as client:
        by_param = await client.get("/v1/stats", params={
            **FEBRUARY_PARAMS, "group_by": "month,department", "format": "csv"})
        by_accept = await client.get("/v1/stats", params={**FEBRUARY_PARAMS,
                                                          "group_by": ["month", "department"]},
                                     headers={"Accept": "text/csv"})
    assert by_param.status_code == 200, by_param.text
    assert by_param.headers["content-type"].startswith("text/csv")
    assert "attachment" in by_param.headers["content-disposition"]
    assert by_accept.text == by_param.text
    text = by_param.content.decode("utf-8")
    assert text.startswith("\ufeff")
    table = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    header = table[0]
    assert header[:2] == ["月份 month", "牵头部门 department"]
    assert {"化解率 resolution_rate", "办结率 closure_rate", "按期办结率 on_time_rate",
            "满意度均值 satisfaction_mean", "分流率 diversion_rate", "调处成功率 success_rate",
            "重复率 repeat_rate", "受理量 received"} <= set(header)
    rows = [dict(zip(header, line, strict=True)) for line in table[1:]]
    judicial = next(r for r in rows if r["牵头部门 department"] == "judicial_office")
    assert judicial["月份 month"] == "2024-02"
    assert (judicial["受理量 received"], judicial["办结数 closed"]) == ("3", "2")
    assert judicial["化解率 resolution_rate"] == "0.5000"
    assert rows[-1]["月份 month"] == "合计 total"
    assert rows[-1]["受理量 received"] == "9"
    assert rows[-1]["化解率 resolution_rate"] == "0.6000"


@pytest.mark.parametrize("params,status", [
    ({"group_by": "province"}, 422),
    ({"group_by": "day,month"}, 422),
    ({"received_from": "2024-03-01", "received_to": "2024-02-01"}, 422),
    ({"format": "xlsx"}, 422),
    ({"jurisdiction_level": "grid", "group_by": "jurisdiction"}, 422),
])
async def test_bad_stats_parameters_are_422(mediation: Served, params: dict[str, str],
                                            status: int) -> None:
    async with httpx.AsyncClient(base_url=mediation.url, headers=AUTH) as client:
        r = await client.get("/v1/stats", params=params)
    assert r.status_code == status, r.text
    assert r.json()["fields"]


async def test_stats_need_the_stats_scope_and_document_every_definition(mediation: Served) -> None:
    async with httpx.AsyncClient(base_url=mediation.url) as client:
        refused = await client.get("/v1/stats", headers=mediation.reader_key)
        spec = (await client.get("/openapi.json")).json()
    assert refused.status_code == 403
    description = spec["paths"]["/v1/stats"]["get"]["description"]
    for definition in ("化解率 = closed_resolved ÷ closed", "办结率 = closed ÷ received",
                       "按期办结率 = closed_on_time ÷ closed", "分流率 = court_mediated ÷ "
                       "court_received", "调处成功率 = resolved ÷ mediated",
                       "重复率 = repeats ÷ received", "satisfaction"):
        assert definition in description
