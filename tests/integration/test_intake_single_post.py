"""Intake's single-post fast path (services/intake/single_post.py) answers exactly as the
FastAPI stack does: the same requests, sent to an intake with the fast path and to one
without it (same database, broker and settings), get the same status, headers and body,
case ids and each run's own external ids aside. The two intakes run on a broker and
database of this module's own: two members of intake's consumer groups joining and leaving
together left the shared broker's groups slow to serve the next modules' intakes."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kit.auth import KeyStore, Scope
from services.intake.main import create
from services.intake.single_post import SinglePostFastPath
from tests.infra import AUTH, Isolated, serve, service_settings

pytestmark = pytest.mark.integration

RATE, BURST = 0.5, 2
SMALL_BODY = 4096


@pytest.fixture(scope="module")
async def two_intakes(isolated: Isolated) -> AsyncIterator[tuple[FastAPI, str, FastAPI, str]]:
    def make() -> FastAPI:
        return create(service_settings("intake", isolated.broker.bootstrap,
                                       isolated.database_url, isolated.directory,
                                       rate_limit_per_second=RATE, rate_limit_burst=BURST,
                                       max_body_bytes=SMALL_BODY))
    fast, stack = make(), make()
    stack.user_middleware = [m for m in stack.user_middleware
                             if m.cls is not SinglePostFastPath]
    async with serve(fast) as fast_url, serve(stack) as stack_url:
        yield fast, fast_url, stack, stack_url


def _order(no: str, **extra: object) -> dict[str, object]:
    return {"order_no": no, "content": "楼上漏水，多次沟通无果，电话13912345678。",
            "received_at": "2026-11-20T08:00:00+08:00", "caller_name": "张三",
            "caller_phone": "13912345678", "address": "城关街道", **extra}


def _visit(visit_id: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {
        "content": "工地拖欠三个月工资，老板失联。", "category": "劳资纠纷",
        "visitor": {"name": "冯六", "phone": "13500135000"}, "region_code": "330699002"}
    if visit_id:
        body["visit_id"] = visit_id
    return body


async def _requests(keys: KeyStore, run: str) -> list[tuple[str, dict[str, Any]]]:
    """(path, httpx arguments) of every kind of single post; `run` makes the ids its own."""
    _, limited = await keys.create("limited writer", [Scope.INTAKE_WRITE.value])
    _, reader = await keys.create("reader", [Scope.CASES_READ.value])
    _, grid_only = await keys.create("grid only", [Scope.INTAKE_WRITE.value],
                                     channels=["grid"])
    hotline = "/v1/intake/hotline_12345"
    walk_in = "/v1/intake/walk_in"
    bearer = {"Authorization": f"Bearer {limited}"}
    return [
        (hotline, {"json": _order(f"{run}-1")}),
        (hotline, {"json": _order(f"{run}-1")}),  # duplicate: 200
        (hotline, {"json": _order(f"{run}-1", content="内容改了")}),  # conflict: 409
        (hotline, {"json": _order(f"{run}-2", caller_phone="")}),  # "" is absent
        (hotline, {"json": _order(f"{run}-3", extra_field={"a": [1, 2]})}),
        (hotline, {"json": {"order_no": f"{run}-4"}}),  # missing fields: 422
        (hotline, {"json": _order(f"{run}-5", received_at="yesterday")}),
        (hotline, {"json": [1, 2]}),
        (hotline, {"json": _order(f"{run}-6", caller_phone=123456789012345678901234567890)}),
        (hotline, {"content": b"{\"order_no\": ", "headers": {
            "Content-Type": "application/json"}}),
        (hotline, {"content": b"", "headers": {"Content-Type": "application/json"}}),
        (hotline, {"content": b"  ", "headers": {"Content-Type": "application/json"}}),
        (hotline, {"content": b'{"order_no": "x", "amount": NaN}', "headers": {
            "Content-Type": "application/json"}}),
        (hotline, {"content": b'\xff\xfe{}', "headers": {"Content-Type": "application/json"}}),
        (hotline, {"json": _order(f"{run}-7"), "headers": {
            "Content-Type": "application/json; charset=utf-16"}}),
        (hotline, {"content": b'{"order_no": "y"}', "headers": {"Content-Type": "text/plain"}}),
        (hotline, {"json": _order(f"{run}-8"), "headers": {
            "Content-Type": "application/json; charset=utf-8"}}),
        (hotline, {"json": _order(f"{run}-9", content="长" * SMALL_BODY)}),  # 413
        (hotline, {"json": _order(f"{run}-10"), "headers": {"Authorization": ""}}),
        (hotline, {"json": _order(f"{run}-11"), "headers": {"Authorization": "Bearer nope"}}),
        (hotline, {"json": _order(f"{run}-12"), "headers": {"Authorization": "Basic abc"}}),
        (hotline, {"json": _order(f"{run}-13"), "headers": {
            "Authorization": f"Bearer {reader}"}}),  # no intake:write: 403
        (hotline, {"json": {"order_no": 1}, "headers": {
            "Authorization": f"Bearer {reader}"}}),  # 403 before 422
        (hotline, {"json": _order(f"{run}-14"), "headers": {
            "Authorization": f"Bearer {grid_only}"}}),  # another channel: 403
        (hotline, {"json": {"order_no": 1}, "headers": {
            "Authorization": f"Bearer {grid_only}"}}),  # 422 before the channel's 403
        (walk_in, {"json": _visit()}),
        (walk_in, {"json": _visit(), "headers": {"Idempotency-Key": f"K{run}"}}),
        (walk_in, {"json": _visit(), "headers": {"Idempotency-Key": f"K{run}"}}),
        (walk_in, {"json": _visit(f"W{run}"), "headers": {"Idempotency-Key": f"X{run}"}}),
        (walk_in, {"json": _visit(), "headers": {"Idempotency-Key": "has spaces in it"}}),
        (walk_in, {"json": _visit(), "headers": {"Idempotency-Key": ""}}),
        # A limited key: its burst, then 429 (valid or not), a bad body still 422 in the burst.
        (hotline, {"json": _order(f"{run}-15"), "headers": bearer}),
        (hotline, {"json": {"order_no": 2}, "headers": bearer}),
        (hotline, {"json": _order(f"{run}-16"), "headers": bearer}),
        (hotline, {"json": {"order_no": 3}, "headers": bearer}),
        (f"{hotline}/", {"json": _order(f"{run}-17")}),
        (hotline + "?x=1", {"json": _order(f"{run}-18")}),
    ]


_CASE_ID = re.compile(r"FQ\d{8}-[A-Z]{14}")


def _seen(answer: httpx.Response, run: str) -> tuple[int, list[tuple[str, str]], str]:
    origin = f"{answer.request.url.scheme}://{answer.request.url.netloc.decode()}"
    headers = [(k, v.replace(origin, "<origin>")) for k, v in answer.headers.items()
               if k != "date"]
    body = _CASE_ID.sub("<case>", answer.text).replace(run, "<run>")
    return answer.status_code, headers, body


async def test_the_fast_path_answers_every_single_post_as_the_stack_does(
        two_intakes: tuple[FastAPI, str, FastAPI, str]) -> None:
    fast, fast_url, stack, stack_url = two_intakes
    answers = {}
    for app, url, name in ((fast, fast_url, "fast"), (stack, stack_url, "stack")):
        run = f"{name[0].upper()}{uuid.uuid4().hex[:10]}"
        requests = await _requests(app.state.keys, run)
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as client:
            # The first post of each path goes through the stack: the fast path learns the
            # route FastAPI chose for it, then serves the path itself.
            for path in ("/v1/intake/hotline_12345", "/v1/intake/walk_in"):
                await client.post(path, json={})
            answers[name] = [_seen(await client.post(path, **arguments), run)
                             for path, arguments in requests]
    for index, (fast_answer, stack_answer) in enumerate(
            zip(answers["fast"], answers["stack"], strict=True)):
        assert fast_answer == stack_answer, f"request {index}"
    statuses = [status for status, _, _ in answers["fast"]]
    assert statuses[:3] == [202, 200, 409]
    assert {202, 200, 401, 403, 409, 413, 415, 422, 429} <= set(statuses)


async def test_the_fast_path_serves_the_ordinary_post(
        two_intakes: tuple[FastAPI, str, FastAPI, str]) -> None:
    _, fast_url, _, _ = two_intakes
    async with httpx.AsyncClient(base_url=fast_url, headers=AUTH, timeout=30) as client:
        await client.post("/v1/intake/grid", json={})
        served = 0
        original = SinglePostFastPath._serve

        async def counting(self: SinglePostFastPath, *args: Any) -> None:
            nonlocal served
            served += 1
            await original(self, *args)

        SinglePostFastPath._serve = counting  # type: ignore[method-assign]
        try:
            answer = await client.post("/v1/intake/grid", json={
                "report_id": f"G{uuid.uuid4().hex[:10]}", "grid_code": "330699001001001",
                "description": "占道经营"})
        finally:
            SinglePostFastPath._serve = original  # type: ignore[method-assign]
    assert answer.status_code == 202, answer.text
    assert served == 1
