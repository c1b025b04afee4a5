"""The hotline guide's example client (examples/hotline_client.py), run as a vendor would run
it against the five services as processes on the real broker and database: a key made with
the documented command, the order posted and posted again, a change refused naming the
field, the case found by order number, callbacks received and verified by the example's own
receiver, an extension request approved by it, the callback log read with the same key."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.hotline_client import (
    CallbackReceiver,
    Centre,
    CentreError,
    follow_order,
    sample_order,
)
from kit.settings import SERVICE_PORTS
from tests.e2e.test_hotline_order_lifecycle import _wait_until_consuming
from tests.infra import (
    AUTH,
    ROOT,
    TEST_HOTLINE_CALLBACK_SECRET,
    Broker,
    eventually,
    free_port,
    service_processes,
)

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]


@pytest.fixture(scope="module")
def platform(broker: Broker, database_url: str, run_dir: Path
             ) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """The services' URLs, and the environment they run with (for the key command)."""
    var = run_dir / "e2e-hotline-example"
    env = {"FQ_DELIVERY_BACKOFF_BASE_SECONDS": "0.2", "FQ_DELIVERY_BACKOFF_MAX_SECONDS": "1"}
    with service_processes({name: free_port() for name in SERVICE_PORTS},
                           bootstrap=broker.bootstrap, database_url=database_url, var=var,
                           env=env) as started:
        urls = {name: s.url for name, s in started.items()}
        _wait_until_consuming(urls)
        cli_env = {**os.environ, "FQ_VAR_DIR": str(var)}
        if not database_url.startswith("sqlite"):
            cli_env["FQ_DATABASE_URL"] = database_url
        yield urls, cli_env


def hotline_key(cli_env: dict[str, str]) -> str:
    """`fengqiao keys create --profile hotline --channel hotline_12345`, as docs/intake.md
    tells a hotline's administrator to run it."""
    made = subprocess.run(
        [sys.executable, "-m", "kit.cli", "keys", "create", "--name", "12345 example",
         "--profile", "hotline", "--channel", "hotline_12345"],
        env=cli_env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return str(json.loads(made.stdout)["key"])


async def test_the_example_client_integrates_a_hotline_from_the_docs(
        platform: tuple[dict[str, str], dict[str, str]]) -> None:
    urls, cli_env = platform
    centre = Centre(hotline_key(cli_env), urls["intake"], urls["router"], urls["mediation"],
                    urls["notify"])
    receiver = CallbackReceiver(TEST_HOTLINE_CALLBACK_SECRET)
    with receiver:
        villages = [j for j in await asyncio.to_thread(centre.region_codes)
                    if j["level"] == "village"]
        order = {**sample_order(receiver.url), "region_code": villages[0]["code"]}
        case_id = await asyncio.to_thread(centre.post_order, order)
        again = await asyncio.to_thread(centre.post_order, order)
        with pytest.raises(CentreError) as changed:
            await asyncio.to_thread(centre.post_order, {**order, "content": "另一件事"})
        case = await asyncio.to_thread(centre.wait_for_case, order["order_no"])

        # The order's own 3 days bind; the case is worked where the order said, or above it.
        received = datetime.fromisoformat(order["received_at"])
        assert datetime.fromisoformat(case["resolve_by"]) - received == timedelta(days=3)
        assert case["resolve_by_source"] == "hotline"
        assert villages[0]["code"].startswith(case["jurisdiction_code"])

        # The example follows the order in a thread while the department works the case.
        followed: list[dict[str, Any]] = []
        follower = threading.Thread(target=lambda: followed.extend(follow_order(
            centre, receiver, order["order_no"], wait=120, echo=lambda _: None)))
        follower.start()
        await _work_the_case(urls["mediation"], case, received)
        await asyncio.to_thread(follower.join, 150)
        log = await asyncio.to_thread(centre.callbacks_sent, case_id)
        # The hotline's own return visit, after closure, sent twice (a retry): one rating.
        visit = {"satisfaction": 5, "text": "回访群众，对处理结果满意"}
        rated = await asyncio.to_thread(centre.send_update, order["order_no"], "FU-1",
                                        "follow_up", **visit)
        rated_again = await asyncio.to_thread(centre.send_update, order["order_no"], "FU-1",
                                              "follow_up", **visit)

        # A callback the centre did not sign is refused by the example's receiver.
        forged = await asyncio.to_thread(httpx.post, receiver.url, content=b'{"order_no": "x"}', headers={
            "webhook-id": "msg_forged", "webhook-timestamp": str(int(time.time())),
            "webhook-signature": "v1,AAAA"})
    centre.close()

    assert again == case_id
    assert changed.value.status == 409
    assert [f["field"] for f in changed.value.fields] == ["content"]
    assert [c["step"] for c in followed] == [
        "signed_for", "progress", "extension_requested", "extension_approved", "closed"]
    assert all(c["case_id"] == case_id for c in followed)
    assert followed[-1]["result"] and "暂停夜间施工" in followed[-1]["result"]
    assert forged.status_code == 401 and receiver.refused == 1
    assert [t["to_status"] for t in rated["transitions"]] == ["visited", "rated"]
    assert rated_again == rated and rated["case"]["satisfaction"] == 5
    assert {d["status"] for d in log} == {"succeeded"} and len(log) >= len(followed)


async def _work_the_case(mediation: str, case: dict[str, Any], received: datetime) -> None:
    """What the lead department does, with the centre's own key: accept, a progress note,
    ask for two more days, wait for the hotline's approval, mediate, resolve, close."""
    url = f"{mediation}/v1/cases/{case['case_id']}"
    async with httpx.AsyncClient(headers=AUTH, timeout=10) as client:
        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            answer = await client.post(url + path, json=body)
            assert answer.status_code == 200, answer.text
            return dict(answer.json()["case"])

        async def move(to_status: str, version: int, **data: Any) -> int:
            moved = await post("/transitions", {"to_status": to_status, "actor": "李调解员",
                                                "expected_version": version, "data": data})
            return int(moved["version"])

        await move("accepted", case["version"])
        await post("/progress-notes", {"note": "已电话联系双方", "actor": "李调解员"})
        asked_for = received + timedelta(days=5)
        await post("/extension-requests", {"requested_resolve_by": asked_for.isoformat(),
                                           "reason": "需等待物业出具施工记录",
                                           "actor": "李调解员"})

        async def now() -> dict[str, Any]:
            return dict((await client.get(url)).json())
        approved = await eventually(now, lambda c: c["resolve_by_source"] == "extension",
                                    within=60)
        assert datetime.fromisoformat(approved["resolve_by"]) == asked_for
        version = await move("in_mediation", approved["version"])
        version = await move("resolved", version, agreement="楼上住户暂停夜间施工",
                             agreement_amount=0)
        await move("closed", version)


async def test_the_example_client_registers_its_endpoint_once(
        platform: tuple[dict[str, str], dict[str, str]]) -> None:
    """`--register`'s way: the key's endpoint registered once (its secret shown once, a new
    one by rotation), an order without callback_url, its 签收 there under that secret."""
    urls, cli_env = platform
    centre = Centre(hotline_key(cli_env), urls["intake"], urls["router"], urls["mediation"],
                    urls["notify"])
    with CallbackReceiver(secret="") as receiver:
        secret = await asyncio.to_thread(centre.register_endpoint, receiver.url,
                                         ["signed_for", "closed"])
        again = await asyncio.to_thread(centre.register_endpoint, receiver.url,
                                        ["signed_for", "closed"])
        assert secret and secret.startswith("whsec_") and again is None
        receiver.secret = await asyncio.to_thread(centre.rotate_endpoint_secret)
        order = sample_order(None)
        case_id = await asyncio.to_thread(centre.post_order, order)
        case = await asyncio.to_thread(centre.wait_for_case, order["order_no"])
        async with httpx.AsyncClient(headers=AUTH, timeout=10) as client:
            accepted = await client.post(
                f"{urls['mediation']}/v1/cases/{case_id}/transitions",
                json={"to_status": "accepted", "actor": "李调解员",
                      "expected_version": case["version"]})
            assert accepted.status_code == 200, accepted.text
        signed_for = await asyncio.to_thread(receiver.received.get, timeout=60)
    centre.close()
    assert (signed_for["order_no"], signed_for["step"]) == (order["order_no"], "signed_for")
    assert signed_for["case_id"] == case_id and receiver.refused == 0
