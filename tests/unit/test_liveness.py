"""kit.liveness: which activities are stuck, and how beats find their activity."""

from __future__ import annotations

import asyncio
import time

from kit import liveness
from kit.liveness import Heartbeats


def test_only_expected_activities_past_the_bound_are_stuck(monkeypatch: object) -> None:
    beats = Heartbeats("router")
    beats.expect("consumer-router")
    beats.expect("outbox-relay")
    beats.beat("processed-keys-pruner")  # not expected: never stuck
    clock = time.monotonic()
    beats._last["consumer-router"] = clock - 30
    beats._last["processed-keys-pruner"] = clock - 300
    assert set(beats.stuck(10)) == {"consumer-router"}
    beats.excuse(["consumer-router"])
    assert beats.stuck(10) == {}


async def test_a_beat_goes_to_the_activity_bound_to_its_task_and_its_children() -> None:
    beats = Heartbeats("notify")
    beats.expect("delivery-sender")
    beats._last["delivery-sender"] -= 100

    async def job() -> None:
        beats.bind("delivery-sender")

        async def child() -> None:
            liveness.beat()

        await asyncio.ensure_future(child())

    liveness.beat()  # no activity bound here: nothing happens
    assert beats.stuck(50) == {"delivery-sender": beats.ages()["delivery-sender"]}
    await asyncio.create_task(job())
    assert beats.stuck(50) == {}
