"""Rate limits per key on intake's POST routes: a burst, then 429 with Retry-After in the
error format (Open311's list for Open311), a bucket per key, admin keys not limited, and
the key admitted again once the bucket refilled."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from kit.auth import KeyStore, Scope
from services.intake.main import create
from tests.infra import AUTH, Broker, serve, service_settings

pytestmark = pytest.mark.integration

# Slow enough that a loaded machine cannot refill a token between the requests of a burst.
RATE, BURST = 0.5, 3


@pytest.fixture(scope="module")
async def intake(broker: Broker, database_url: str, run_dir: Path
                 ) -> AsyncIterator[tuple[str, KeyStore]]:
    app = create(service_settings("intake", broker.bootstrap, database_url, run_dir,
                                  rate_limit_per_second=RATE, rate_limit_burst=BURST))
    async with serve(app) as url:
        yield url, app.state.keys


async def writer(keys: KeyStore, *scopes: Scope) -> dict[str, str]:
    _, token = await keys.create("rate-limited system",
                                 [s.value for s in (Scope.INTAKE_WRITE, *scopes)])
    return {"Authorization": f"Bearer {token}"}


def order() -> dict[str, str]:
    return {"order_no": f"RL-{uuid.uuid4().hex[:12]}", "content": "噪音扰民",
            "received_at": "2026-11-20T08:00:00+08:00"}


async def test_a_key_gets_its_burst_then_429_with_retry_after_until_it_refills(
        intake: tuple[str, KeyStore]) -> None:
    url, keys = intake
    headers = await writer(keys)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        answers = [await client.post("/v1/intake/hotline_12345", json=order())
                   for _ in range(BURST)]
        assert [a.status_code for a in answers] == [202] * BURST
        limited = await client.post("/v1/intake/hotline_12345", json=order())
        assert limited.status_code == 429
        assert limited.json()["error"] == "rate_limited"
        assert "retry in" in limited.json()["message"]
        wait = int(limited.headers["retry-after"])
        assert 1 <= wait <= 1 / RATE
        batch = await client.post("/v1/intake/grid/batch", json={"items": [
            {"report_id": "RL-B", "grid_code": "330699001001001", "description": "占道"}]})
        assert batch.status_code == 429, "one bucket for every POST route of the key"
        await asyncio.sleep(wait + 0.05)
        again = await client.post("/v1/intake/hotline_12345", json=order())
        assert again.status_code == 202, again.text


async def test_keys_have_buckets_of_their_own_and_admin_keys_are_not_limited(
        intake: tuple[str, KeyStore]) -> None:
    url, keys = intake
    first, second = await writer(keys), await writer(keys)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for _ in range(BURST):
            await client.post("/v1/intake/hotline_12345", json=order(), headers=first)
        assert (await client.post("/v1/intake/hotline_12345", json=order(),
                                  headers=first)).status_code == 429
        assert (await client.post("/v1/intake/hotline_12345", json=order(),
                                  headers=second)).status_code == 202
        admin = [await client.post("/v1/intake/hotline_12345", json=order(), headers=AUTH)
                 for _ in range(BURST * 3)]
        assert {a.status_code for a in admin} == {202}


async def test_lookups_and_unknown_keys_do_not_spend_a_keys_tokens(
        intake: tuple[str, KeyStore]) -> None:
    url, keys = intake
    headers = await writer(keys)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        lookups = [await client.get("/v1/intake/hotline_12345/reports/RL-none")
                   for _ in range(BURST * 3)]
        assert {a.status_code for a in lookups} == {404}
        assert (await client.post("/v1/intake/hotline_12345", json=order(),
                                  headers={"Authorization": "Bearer fq_unknown"})
                ).status_code == 401
        answers = [await client.post("/v1/intake/hotline_12345", json=order())
                   for _ in range(BURST)]
        assert {a.status_code for a in answers} == {202}


async def test_open311_answers_429_in_its_own_error_format(intake: tuple[str, KeyStore]
                                                          ) -> None:
    url, keys = intake
    headers = await writer(keys)
    form = {"service_code": "neighbor", "description": "噪音", "address_string": "江滨路"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        answers = [await client.post("/open311/v2/requests.json", data=form)
                   for _ in range(BURST + 1)]
    assert [a.status_code for a in answers] == [201] * BURST + [429]
    [error] = answers[-1].json()
    assert error["code"] == 429 and "too fast" in error["description"]
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 1 / RATE
