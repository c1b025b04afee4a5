"""Places end to end, through the real intake, router and mediation on a broker and database
of their own: a grid report with only coordinates lands in the right village (the router's
decision and the case); `GET /v1/cases` filters by place and jurisdiction subtree and by a
bounding box, exactly; the case list as GeoJSON pages like JSON; a bad box is 422 naming
`bbox`; and rows from before the migration get their place and point from what they hold."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from contracts.api_mediation import CaseFeatureCollection, CaseSummary
from kit import migrate
from kit.db import create_engine
from services.intake.main import create as create_intake
from services.mediation.main import create as create_mediation
from services.mediation.store import metadata as mediation_metadata
from services.router.domain import load_jurisdictions
from services.router.main import create as create_router
from tests.infra import (
    AUTH,
    ROOT,
    Isolated,
    create_pg_database,
    drop_pg_database,
    eventually,
    serve,
    service_settings,
)

pytestmark = pytest.mark.integration

TREE = load_jurisdictions(ROOT / "services/router/data/jurisdictions.yaml")
COUNTY, CHENGGUAN, FENGQIAO = "330699", "330699001", "330699101"
FENGYUAN = "330699101201"          # 枫源村: lon 120.2867-120.3133, lat 29.75-29.78
JIANGBIN = "330699001001"          # 江滨社区
XIMEN = "330699001003"             # 西门社区
XINHUA_BAITA = "330699102203"      # 新华村 of 白塔镇
LONGTAN = "330699103202"           # 龙潭村
NOISE = "邻居家装修噪音扰民，多次沟通无果。"
WAGES = "工地老板拖欠农民工工资三个月，一直不给。"
GEOJSON = "application/geo+json"


@dataclass
class World:
    intake: str
    mediation: str


@pytest.fixture(scope="module")
async def world(isolated: Isolated) -> AsyncIterator[World]:
    def settings(service: str) -> Any:
        return service_settings(service, isolated.broker.bootstrap, isolated.database_url,
                                isolated.directory)

    async with serve(create_intake(settings("intake"))) as intake, \
            serve(create_router(settings("router"))), \
            serve(create_mediation(settings("mediation"))) as mediation:
        yield World(intake, mediation)


async def submit(world: World, channel: str, payload: dict[str, Any]) -> str:
    async with httpx.AsyncClient(base_url=world.intake, headers=AUTH, timeout=30) as client:
        r = await client.post(f"/v1/intake/{channel}", json=payload)
        assert r.status_code == 202, r.text
        return str(r.json()["case_id"])


def grid(description: str = NOISE, **fields: Any) -> dict[str, Any]:
    return {"report_id": f"G-{uuid.uuid4().hex[:12]}", "description": description,
            "event_type": "邻里纠纷" if description == NOISE else None, **fields}


def hotline(content: str = NOISE, **fields: Any) -> dict[str, Any]:
    return {"order_no": f"GD-{uuid.uuid4().hex[:12]}", "content": content,
            "received_at": datetime.now(UTC).isoformat(), **fields}


def at(lat: float, lon: float) -> dict[str, float]:
    return {"lat": lat, "lon": lon}


async def routed(world: World, case_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=world.mediation, headers=AUTH, timeout=30) as client:
        async def fetch() -> httpx.Response:
            return await client.get(f"/v1/cases/{case_id}")
        r = await eventually(fetch, lambda r: r.status_code == 200
                             and r.json()["status"] == "routed", within=60)
        return dict(r.json())


async def listed(world: World, **params: Any) -> set[str]:
    async with httpx.AsyncClient(base_url=world.mediation, headers=AUTH, timeout=30) as client:
        r = await client.get("/v1/cases", params={"limit": 200, **params})
        assert r.status_code == 200, r.text
        return {item["case_id"] for item in r.json()["items"]}


def centre(code: str) -> list[float]:
    point = TREE.centre(code)
    assert point is not None
    return [point[0], point[1]]


# --- the "done when": coordinates alone ---------------------------------------------------

async def test_a_grid_report_with_only_coordinates_lands_in_the_right_village(
        world: World) -> None:
    case_id = await submit(world, "grid", grid(location=at(29.765, 120.2950)))
    case = await routed(world, case_id)
    decision = case["decision"]
    assert decision["tier"] == "village"
    assert decision["jurisdiction"] == {"code": FENGYUAN, "name": "枫源村", "level": "village"}
    assert (decision["place"]["code"], decision["place"]["source"]) == (
        FENGYUAN + "001", "coordinates")
    assert "jurisdiction.coordinates" in decision["rules_fired"]
    assert "属地枫源村（据坐标定位）" in decision["explanation"]["zh"]
    assert case["jurisdiction_code"] == FENGYUAN
    assert (case["place_code"], case["position"]) == (FENGYUAN + "001", "reported")
    assert await listed(world, jurisdiction=FENGYUAN, external_id=case["external_id"]) == {
        case_id}


# --- filters and GeoJSON over a set of cases ------------------------------------------------

@pytest.fixture(scope="module")
async def cases(world: World) -> dict[str, str]:
    """Seven cases, routed, each somewhere else (or nowhere)."""
    submitted = dict(zip("ABCDEFG", await asyncio.gather(
        # 枫源村's first grid, a neighbours' quarrel: worked by the village.
        submit(world, "grid", grid(location=at(29.765, 120.2950))),
        # 枫源村's second grid, wages owed: worked by the town (枫桥镇), placed in the village.
        submit(world, "grid", grid(WAGES, location=at(29.760, 120.3100))),
        # 江滨社区's first grid by its code, no coordinates: on the map at the grid's centre.
        submit(world, "grid", grid(grid_code=JIANGBIN + "001")),
        # 新华村 of 白塔镇 by coordinates (an address naming a 新华村 would be in doubt).
        submit(world, "grid", grid(location=at(29.735, 120.1600))),
        # 12345 by address: 西门社区, at the village's centre.
        submit(world, "hotline_12345", hotline(address="城关街道西门社区5幢")),
        # Nowhere: no code, no coordinates, no place named.
        submit(world, "hotline_12345", hotline()),
        # Coordinates far outside the county: the address decides (龙潭村); the point stays.
        submit(world, "grid", grid(address="溪口镇龙潭村", location=at(39.9, 116.4))),
    ), strict=True))
    for case_id in submitted.values():
        await routed(world, case_id)
    return submitted


async def test_the_cases_are_placed_where_they_were_reported(
        world: World, cases: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=world.mediation, headers=AUTH, timeout=30) as client:
        got = {name: (await client.get(f"/v1/cases/{case_id}")).json()
               for name, case_id in cases.items()}
    placed = {name: (c["jurisdiction_code"], c["place_code"], c["position"])
              for name, c in got.items()}
    assert placed == {
        "A": (FENGYUAN, FENGYUAN + "001", "reported"),
        "B": (FENGQIAO, FENGYUAN + "002", "reported"),
        "C": (JIANGBIN, JIANGBIN + "001", "place"),
        "D": (XINHUA_BAITA, XINHUA_BAITA + "001", "reported"),
        "E": (XIMEN, XIMEN, "place"),
        "F": (None, None, None),
        "G": (LONGTAN, LONGTAN, "reported"),
    }
    assert got["G"]["decision"]["place"]["source"] == "address"


def ids(cases: dict[str, str], names: str) -> set[str]:
    return {cases[name] for name in names}


@pytest.mark.parametrize(("params", "names"), [
    ({"place": FENGQIAO}, "AB"),
    ({"place": FENGYUAN}, "AB"),
    ({"place": FENGYUAN + "001"}, "A"),
    ({"place": FENGYUAN + "002"}, "B"),
    ({"place": CHENGGUAN}, "CE"),
    ({"place": COUNTY}, "ABCDEG"),
    ({"place": "330699103"}, "G"),
    ({"place": "9"}, ""),
    # The node that works the case: B is the town's, so not its village's.
    ({"jurisdiction": FENGQIAO}, "AB"),
    ({"jurisdiction": FENGYUAN}, "A"),
    ({"jurisdiction": CHENGGUAN}, "CE"),
    ({"jurisdiction": COUNTY}, "ABCDEG"),
    # The county's rectangle: every case on the map but the one reported from Beijing.
    ({"bbox": "120.14,29.64,120.34,29.78"}, "ABCDE"),
    ({"bbox": "120.2867,29.75,120.3133,29.78"}, "AB"),
    ({"bbox": "120.294,29.764,120.296,29.766"}, "A"),
    ({"bbox": "116,39,117,40"}, "G"),
    ({"bbox": "0,0,1,1"}, ""),
    ({"bbox": "120.14,29.64,120.34,29.78", "jurisdiction": CHENGGUAN}, "CE"),
    ({"bbox": "120.14,29.64,120.34,29.78", "place": FENGQIAO, "tier": "village"}, "A"),
])
async def test_subtree_and_bounding_box_filters_return_exactly_the_right_cases(
        world: World, cases: dict[str, str], params: dict[str, str], names: str) -> None:
    # Only this module's cases are in its database; the first test's case is in 枫源村 too.
    found = await listed(world, **params) & set(cases.values())
    assert found == ids(cases, names)


async def test_the_case_list_as_geojson_pages_like_json(
        world: World, cases: dict[str, str]) -> None:
    mine = set(cases.values())
    async with httpx.AsyncClient(base_url=world.mediation, headers=AUTH, timeout=30) as client:
        as_json = (await client.get("/v1/cases", params={"limit": 200})).json()["items"]
        summaries = {item["case_id"]: item for item in as_json if item["case_id"] in mine}
        features: list[dict[str, Any]] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"format": "geojson", "limit": 2}
            if cursor:
                params["cursor"] = cursor
            r = await client.get("/v1/cases", params=params)
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith(GEOJSON)
            page = r.json()
            CaseFeatureCollection.model_validate(page)
            assert page["type"] == "FeatureCollection" and len(page["features"]) <= 2
            features += page["features"]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
    by_id = {f["id"]: f for f in features}
    assert len(by_id) == len(features), "a case on two pages"
    # Every case with a point, none without (F), newest first as in JSON.
    assert set(by_id) & mine == ids(cases, "ABCDEG") and pages >= 4
    order = [item["case_id"] for item in as_json if item["case_id"] in by_id]
    assert [f["id"] for f in features] == order
    for feature in features:
        assert feature["type"] == "Feature"
        assert feature["geometry"]["type"] == "Point"
        lon, lat = feature["geometry"]["coordinates"]
        assert -180 <= lon <= 180 and -90 <= lat <= 90
        CaseSummary.model_validate(feature["properties"])
    for name, case_id in cases.items():
        if case_id in by_id:
            # The summary, exactly: nothing more goes on the map than the list shows.
            assert by_id[case_id]["properties"] == summaries[case_id], name
    assert by_id[cases["A"]]["geometry"]["coordinates"] == [120.2950, 29.765]
    assert by_id[cases["C"]]["geometry"]["coordinates"] == centre(JIANGBIN + "001")
    assert by_id[cases["E"]]["geometry"]["coordinates"] == centre(XIMEN)


async def test_geojson_by_the_accept_header_with_filters(
        world: World, cases: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=world.mediation, timeout=30) as client:
        r = await client.get("/v1/cases", params={"place": FENGYUAN},
                             headers={**AUTH, "Accept": GEOJSON})
        assert r.status_code == 200 and r.headers["content-type"].startswith(GEOJSON)
        assert {f["id"] for f in r.json()["features"]} & set(cases.values()) == ids(cases, "AB")
        plain = await client.get("/v1/cases", params={"place": FENGYUAN}, headers=AUTH)
        assert plain.headers["content-type"].startswith("application/json")
        assert "items" in plain.json()
        nowhere = await client.get("/v1/cases", headers=AUTH, params={
            "format": "geojson", "external_id": (await client.get(
                f"/v1/cases/{cases['F']}", headers=AUTH)).json()["external_id"]})
        assert nowhere.json() == {"type": "FeatureCollection", "features": [],
                                  "next_cursor": None}


@pytest.mark.parametrize("bbox", [
    "120.2,29.7,120.3", "a,b,c,d", "120.3,29.7,120.2,29.8", "120.2,29.8,120.3,29.7",
    "181,0,182,1", "120,-91,121,0", "", "120,29,121,nan", "1,2,3,4,5",
])
async def test_a_bad_bounding_box_is_422_naming_bbox(world: World, bbox: str) -> None:
    async with httpx.AsyncClient(base_url=world.mediation, headers=AUTH, timeout=30) as client:
        r = await client.get("/v1/cases", params={"bbox": bbox})
    assert r.status_code == 422, r.text
    assert [f["field"] for f in r.json()["fields"]] == ["bbox"]


@pytest.mark.parametrize(("params", "field"), [
    ({"format": "kml"}, "format"), ({"place": "33069A"}, "place"),
    ({"place": "3306991012010011"}, "place"),
])
async def test_bad_place_and_format_are_422_naming_them(
        world: World, params: dict[str, str], field: str) -> None:
    async with httpx.AsyncClient(base_url=world.mediation, headers=AUTH, timeout=30) as client:
        r = await client.get("/v1/cases", params=params)
    assert r.status_code == 422, r.text
    assert [f["field"] for f in r.json()["fields"]] == [f"query.{field}"]


async def test_erasure_moves_a_reported_point_to_its_places_centre(world: World) -> None:
    phone = f"139{uuid.uuid4().int % 10**8:08d}"
    case_id = await submit(world, "grid", grid(
        location=at(29.7600, 120.3000), parties=[{"name": "赵六", "phone": phone}]))
    await routed(world, case_id)
    async with httpx.AsyncClient(base_url=world.mediation, headers=AUTH, timeout=30) as client:
        erased = await client.post("/v1/personal-data/erase", json={
            "phone": phone, "legal_basis": "个人信息删除申请 places"})
        assert erased.status_code == 200 and erased.json()["case_ids"] == [case_id]
        case = (await client.get(f"/v1/cases/{case_id}")).json()
        assert (case["place_code"], case["position"]) == (FENGYUAN + "001", "place")
        page = (await client.get("/v1/cases", params={
            "format": "geojson", "external_id": case["external_id"]})).json()
    assert [f["geometry"]["coordinates"] for f in page["features"]] == [
        centre(FENGYUAN + "001")]


async def test_subtree_and_box_filters_are_index_ranges(isolated: Isolated,
                                                        world: World) -> None:
    url = isolated.database_url
    if url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{isolated.directory / 'mediation.db'}"
    where = {"place": "place_code >= '330699101' AND place_code <= '3306991019999999'",
             "bbox": "lon >= 120.2 AND lon <= 120.3 AND lat >= 29.7 AND lat <= 29.8"}
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            plans = {}
            for name, condition in where.items():
                query = f"SELECT case_id FROM mediation_cases WHERE {condition}"
                if engine.dialect.name == "postgresql":
                    # A handful of rows: without this the planner rightly reads them all.
                    await conn.execute(sa.text("SET enable_seqscan = off"))
                    rows = await conn.execute(sa.text(f"EXPLAIN {query}"))
                else:
                    rows = await conn.execute(sa.text(f"EXPLAIN QUERY PLAN {query}"))
                plans[name] = " ".join(str(r[-1]) for r in rows.all())
    finally:
        await engine.dispose()
    # A search of the index by its condition, not a pass over all of it.
    searched = "Index Cond" if url.startswith("postgresql") else "SEARCH"
    assert "ix_mediation_cases_place_code" in plans["place"], plans
    assert searched in plans["place"] and "place_code" in plans["place"].split(searched)[1]
    assert "ix_mediation_cases_lon_lat" in plans["bbox"], plans
    assert searched in plans["bbox"] and "lon" in plans["bbox"].split(searched)[1]


# --- the migration --------------------------------------------------------------------------

MIGRATION = "a7c3e9f1b2d4"


async def test_rows_from_before_get_their_place_and_point(
        database_url: str, tmp_path: Path) -> None:
    name = ""
    if database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path / 'before.db'}"
    else:
        url, name = await create_pg_database()
    engine = create_engine(url)
    before = ScriptDirectory.from_config(migrate._config(
        "mediation", mediation_metadata, None)).get_revision(MIGRATION).down_revision
    now = datetime.now(UTC)
    row = {"channel": "grid", "status": "routed", "version": 2, "received_at": now,
           "cooperating_departments": [], "routing_round": 1, "updated_at": now}
    rows = [
        # Coordinates in the report, the village in the decision.
        {**row, "case_id": "old-1", "external_id": "g1", "jurisdiction_code": FENGYUAN,
         "report": {"location": {"lat": 29.765, "lon": 120.295}},
         "decision": {"jurisdiction": {"code": FENGYUAN, "name": "枫源村", "level": "village"}}},
        # Erased since: no point, the place stays.
        {**row, "case_id": "old-2", "external_id": "g2", "jurisdiction_code": FENGQIAO,
         "report": {"location": "[已删除]"}, "personal_data_erased_at": now,
         "decision": {"jurisdiction": {"code": FENGQIAO, "name": "枫桥镇", "level": "town"}}},
        # Not routed yet, no coordinates: nothing to fill.
        {**row, "case_id": "old-3", "external_id": "h3", "status": "reported", "report": {},
         "routing_round": 0},
    ]
    try:
        async with engine.begin() as conn:
            def upgrade_to(sync: sa.Connection, target: str) -> None:
                command.upgrade(migrate._config("mediation", mediation_metadata, sync), target)
            await conn.run_sync(upgrade_to, str(before))
            # The table as it was then, read from the database.
            table = await conn.run_sync(lambda sync: sa.Table(
                "mediation_cases", sa.MetaData(), autoload_with=sync))
            for values in rows:
                await conn.execute(table.insert().values(
                    **{"text": None, "decision": None, "jurisdiction_code": None,
                       "personal_data_erased_at": None, **values}))
            await conn.run_sync(upgrade_to, "head")
            got = {r.case_id: (r.place_code, r.lat, r.lon, r.position) for r in (
                await conn.execute(sa.text(
                    "SELECT case_id, place_code, lat, lon, position FROM mediation_cases"))
            ).all()}
    finally:
        await engine.dispose()
        if name:
            await drop_pg_database(name)
    assert got == {"old-1": (FENGYUAN, 29.765, 120.295, "reported"),
                   "old-2": (FENGQIAO, None, None, None),
                   "old-3": (None, None, None, None)}
