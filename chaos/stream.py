"""The stream of cases: native reports posted to intake at a steady rate, each retried like a
real hotline system would (same external id, so a retry is never a second case) until intake
accepts it with a 2xx."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx

from tests.infra import AUTH

BEIJING = timezone(timedelta(hours=8))
GIVE_UP_AFTER = 300.0  # seconds of retrying one report

TEXTS = (
    "邻居因为占用停车位与我发生争执，还说要找人打断我的腿。",
    "楼上漏水，多次沟通无果，物业也不管。",
    "工地拖欠工资三个月，老板联系不上。",
    "小区广场舞音乐太吵，晚上十点后还在放。",
    "租房押金房东一直不退，协商不成。",
    "村里土地承包合同到期后对方不肯归还土地。",
    "夫妻离婚后因为孩子抚养费发生纠纷。",
    "饭店油烟直排，影响周边居民生活。",
    "网购商品质量问题，商家拒绝退货。",
    "两家因宅基地边界问题多次争吵，情绪激动。",
)


@dataclass
class Report:
    """One report as the source system sends it, and what intake answered."""

    channel: str
    external_id: str
    payload: dict[str, Any]
    attempts: int = 0
    status: int | None = None  # the last answer; None: no answer at all
    case_id: str | None = None
    answers: dict[str, int] = field(default_factory=dict)  # "202", "503", "error" → count
    refusal: str | None = None  # the body of a 4xx answer, which is final

    @property
    def accepted(self) -> bool:
        return self.case_id is not None


def make_report(number: int, run: str, rng: random.Random) -> Report:
    """Mostly 12345 work orders, some grid reports; some with a caller's phone (an SMS)."""
    text = rng.choice(TEXTS)
    received = (datetime.now(UTC) - timedelta(seconds=rng.randint(0, 3600))).astimezone(BEIJING)
    if rng.random() < 0.15:
        report_id = f"CHAOS-{run}-G{number:06d}"
        return Report("grid", report_id, {
            "report_id": report_id, "grid_code": "330699001001001", "description": text,
            "reporter_id": "WG0012", "occurred_at": received.isoformat()})
    order_no = f"CHAOS-{run}-{number:06d}"
    payload: dict[str, Any] = {"order_no": order_no, "content": text,
                               "received_at": received.isoformat()}
    if rng.random() < 0.3:
        payload["caller_phone"] = f"139{rng.randint(0, 99_999_999):08d}"
    return Report("hotline_12345", order_no, payload)


class CaseStream:
    """Posts `count` reports at `rate` per second with `workers` concurrent clients."""

    def __init__(self, intake_url: str, count: int, rate: float, run: str, seed: int,
                 workers: int = 16) -> None:
        rng = random.Random(seed)
        self.intake_url = intake_url
        self.reports = [make_report(n, run, rng) for n in range(count)]
        self.rate = rate
        self.workers = workers
        self.posted = 0
        self.done = asyncio.Event()

    @property
    def accepted(self) -> list[Report]:
        return [r for r in self.reports if r.accepted]

    async def run(self) -> None:
        queue: asyncio.Queue[Report] = asyncio.Queue()
        async with httpx.AsyncClient(headers=AUTH, timeout=10) as client:
            workers = [asyncio.create_task(self._worker(client, queue))
                       for _ in range(self.workers)]
            started = time.monotonic()
            for n, report in enumerate(self.reports):
                # A steady pace: report n leaves at n / rate seconds.
                delay = started + n / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                queue.put_nowait(report)
                self.posted += 1
            await queue.join()
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        self.done.set()

    async def _worker(self, client: httpx.AsyncClient, queue: asyncio.Queue[Report]) -> None:
        while True:
            report = await queue.get()
            try:
                await self._submit(client, report)
            finally:
                queue.task_done()

    async def _submit(self, client: httpx.AsyncClient, report: Report) -> None:
        url = f"{self.intake_url}/v1/intake/{report.channel}"
        deadline = time.monotonic() + GIVE_UP_AFTER
        backoff = 0.2
        while time.monotonic() < deadline:
            report.attempts += 1
            try:
                response = await client.post(url, json=report.payload)
                report.status = response.status_code
                answer = str(response.status_code)
            except httpx.HTTPError as exc:
                report.status, answer = None, type(exc).__name__
            report.answers[answer] = report.answers.get(answer, 0) + 1
            if report.status is not None and 200 <= report.status < 300:
                report.case_id = response.json()["case_id"]
                return
            if report.status is not None and report.status < 500 and report.status != 429:
                report.refusal = response.text[:500]
                return  # refused for good (a bug in the suite or in intake): counted
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
