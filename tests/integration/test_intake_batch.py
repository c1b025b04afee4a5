"""Batches of native reports over real HTTP: per-item answers, one bad item never fails the
others, and overlapping concurrent batches still make exactly one case per report."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from tests.infra import AUTH, Broker
from tests.integration.test_intake import (
    grid_report,
    intake,
    intake_app,
    order,
    reported_events,
    walk_in_visit,
)

pytestmark = pytest.mark.integration
# The module-scoped fixtures of test_intake, re-exported: this module gets its own server.
__all__ = ["intake", "intake_app"]


async def test_a_batch_answers_each_item_and_one_bad_item_fails_only_itself(
        intake: str, broker: Broker, unique: str) -> None:
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        earlier = await client.post("/v1/intake/hotline_12345", json=order(f"E{unique}"))
        changed = await client.post("/v1/intake/hotline_12345", json=order(f"F{unique}"))
        items: list[object] = [
            order(f"N1{unique}"),  # 0 new
            {"order_no": f"BAD{unique}", "content": "", "received_at": "yesterday"},  # 1
            order(f"E{unique}"),  # 2 the same as a single POST before
            order(f"F{unique}", content="内容改了"),  # 3 changed since
            order(f"N2{unique}"),  # 4 new
            order(f"N2{unique}"),  # 5 the same again within the batch
            order(f"N2{unique}", content="又改了"),  # 6 and changed within the batch
            42,  # 7 not an object
        ]
        r = await client.post("/v1/intake/hotline_12345/batch", json={"items": items})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["accepted"], body["duplicates"], body["conflicts"], body["invalid"]) == (
        2, 2, 2, 2)
    results = body["results"]
    assert [x["index"] for x in results] == list(range(8))
    assert [x["status"] for x in results] == ["accepted", "invalid", "duplicate", "conflict",
                                              "accepted", "duplicate", "conflict", "invalid"]
    assert results[1]["external_id"] == f"BAD{unique}"
    assert {f["field"] for f in results[1]["fields"]} == {"content", "received_at"}
    assert results[7]["fields"][0]["field"] == "<item>"
    assert results[2]["case_id"] == earlier.json()["case_id"]
    assert results[3]["case_id"] == changed.json()["case_id"]
    assert results[5]["case_id"] == results[6]["case_id"] == results[4]["case_id"]
    new_ids = [results[0]["case_id"], results[4]["case_id"]]
    events = await reported_events(broker.bootstrap, new_ids)
    assert {case_id: len(events.get(case_id, [])) for case_id in new_ids} == dict.fromkeys(
        new_ids, 1)


async def test_a_thousand_items_pass_and_more_are_refused(intake: str, unique: str) -> None:
    thousand = [grid_report(f"T{unique}-{i}") for i in range(1000)]
    async with httpx.AsyncClient(base_url=intake, headers=AUTH, timeout=60) as client:
        accepted = await client.post("/v1/intake/grid/batch", json={"items": thousand})
        again = await client.post("/v1/intake/grid/batch", json={"items": thousand})
        too_many = await client.post("/v1/intake/grid/batch",
                                     json={"items": [*thousand, grid_report(f"X{unique}")]})
        empty = await client.post("/v1/intake/grid/batch", json={"items": []})
        bare_list = await client.post("/v1/intake/grid/batch", json=thousand[:2])
    assert accepted.status_code == 200 and accepted.json()["accepted"] == 1000
    assert len({x["case_id"] for x in accepted.json()["results"]}) == 1000
    assert again.json()["duplicates"] == 1000
    assert [x["case_id"] for x in again.json()["results"]] == [
        x["case_id"] for x in accepted.json()["results"]]
    assert too_many.status_code == 422
    assert too_many.json()["fields"][0]["field"] == "items"
    assert "1000" in too_many.json()["fields"][0]["reason"]
    assert (empty.status_code, bare_list.status_code) == (422, 422)


async def test_overlapping_concurrent_batches_make_exactly_one_case_per_report(
        intake: str, unique: str) -> None:
    reports = [order(f"O{unique}-{i}") for i in range(150)]
    batches = []
    for seed in range(4):
        shuffled = reports[:]
        random.Random(seed).shuffle(shuffled)
        batches.append(shuffled)
    async with httpx.AsyncClient(base_url=intake, headers=AUTH, timeout=60) as client:
        answers = await asyncio.gather(*[
            client.post("/v1/intake/hotline_12345/batch", json={"items": b}) for b in batches])
    assert [a.status_code for a in answers] == [200] * 4
    by_order: dict[str, set[str]] = {}
    accepted: dict[str, int] = {}
    for batch, answer in zip(batches, answers, strict=True):
        for item, result in zip(batch, answer.json()["results"], strict=True):
            no = str(item["order_no"])
            by_order.setdefault(no, set()).add(result["case_id"])
            accepted[no] = accepted.get(no, 0) + (result["status"] == "accepted")
            assert result["status"] in ("accepted", "duplicate")
    assert all(len(ids) == 1 for ids in by_order.values())
    assert set(accepted.values()) == {1}


async def test_walk_ins_in_a_batch_get_their_own_ids_unless_they_bring_one(
        intake: str, unique: str) -> None:
    async with httpx.AsyncClient(base_url=intake, headers=AUTH) as client:
        r = await client.post("/v1/intake/walk_in/batch", json={"items": [
            walk_in_visit(), walk_in_visit(), walk_in_visit(f"V{unique}"),
            walk_in_visit(f"V{unique}")]})
        found = await client.get(f"/v1/intake/walk_in/reports/V{unique}")
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["accepted", "accepted", "accepted", "duplicate"]
    assert len({x["case_id"] for x in results}) == 3
    assert results[0]["external_id"] is None
    assert found.json()["case_id"] == results[2]["case_id"]
