"""Shared parts of the benchmarks: a fresh broker and database, producing and counting
messages, running a service as its own process, and printing results."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from kit.bus import create_topics
from tests.infra import (
    Broker,
    ServiceProcess,
    create_pg_database,
    drop_pg_database,
    free_port,
    postgres_available,
    service_processes,
)

# Reports as the channels send them, one per kind of dispute: the benches' case texts.
TEXTS = [
    "夫妻因家务琐事经常吵架，妻子要求离婚，丈夫不同意。",
    "楼下烧烤店油烟和噪音扰民，晚上十二点后还在营业。",
    "快递公司拖欠我两个月工资共计9600元，一直推脱。",
    "十五名工人在小区门口拉横幅讨要工资。",
    "工地包工头卷走了工程款，分包队伍追讨工程款二十万元。",
    "物业公司未经业主同意把小区绿地改成收费停车位。",
    "邻居因为占用停车位与我发生争执，还说要找人打断我的腿。",
    "两车追尾，无人员受伤，双方对责任认定有异议。",
    "石料厂粉尘和噪音污染严重，附近村民意见很大。",
    "征地补偿迟迟不到位，村民准备联名去市里信访。",
]

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Infra:
    broker: Broker
    database_url: str
    pg_name: str | None
    workdir: Path
    stack: ExitStack = field(default_factory=ExitStack)

    async def close(self) -> None:
        self.stack.close()
        self.broker.stop()
        if self.pg_name:
            await drop_pg_database(self.pg_name)


async def start_infra(db: str, partitions: int = 4) -> Infra:
    workdir = Path(tempfile.mkdtemp(prefix="fq-bench-"))
    broker = Broker(workdir)
    broker.start()
    await broker.ready_with_topics(within=30, partitions=partitions)
    if db == "postgres":
        if not postgres_available():
            raise SystemExit("no PostgreSQL on 127.0.0.1:5432 (or FQ_TEST_DATABASE_URL)")
        url, name = await create_pg_database()
        return Infra(broker, url, name, workdir)
    return Infra(broker, f"sqlite+aiosqlite:///{workdir}/bench.db", None, workdir)


def service_database_url(infra: Infra, service: str) -> str:
    """Where `service` keeps its tables: the shared PostgreSQL database, or on SQLite its own
    file in the work directory (as kit.settings places it)."""
    if infra.pg_name:
        return infra.database_url
    return f"sqlite+aiosqlite:///{infra.workdir / (service + '.db')}"


def start_service(infra: Infra, name: str, **env_extra: str) -> ServiceProcess:
    """Run one service as its own process; returns it (its .url, .process) once it is ready."""
    context = service_processes({name: free_port()}, bootstrap=infra.broker.bootstrap,
                                database_url=infra.database_url, var=infra.workdir,
                                env={"FQ_LOG_LEVEL": "WARNING", **env_extra})
    started = infra.stack.enter_context(context)
    return started[name]


def start_bare(app: str, *options: str) -> tuple[subprocess.Popen[bytes], str]:
    """Run the ASGI app `app` (module:attribute) with uvicorn on the services' server stack
    (uvloop, httptools) as its own process; returns it and its URL once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
         "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level",
         "warning", *options], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url + "/", timeout=0.5)  # any answer will do
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.terminate()
    raise TimeoutError(f"{app} did not start")


def cpu_seconds(*services: ServiceProcess) -> float:
    """CPU time (user + system) the services' processes have used so far. Per case, it is
    the figure that other work on the machine disturbs least: it counts only this work."""
    total = 0
    for service in services:
        fields = Path(f"/proc/{service.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


async def produce(bootstrap: str, topic: str, items: list[tuple[bytes, bytes]]) -> None:
    """Send (key, value) pairs as fast as the client batches them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_batch_size=1 << 20)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in items]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def collect(bootstrap: str, topic: str, count: int, within: float,
                  on_progress: Callable[[int], None] | None = None,
                  accept: Callable[[bytes], bool] | None = None
                  ) -> list[tuple[bytes, int]]:
    """Read `count` messages (value, broker timestamp ms) from the start of `topic`."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"bench-reader-{time.time_ns()}",
                                max_poll_records=5000, fetch_max_bytes=50 << 20)
    await consumer.start()
    out: list[tuple[bytes, int]] = []
    try:
        deadline = time.monotonic() + within
        while len(out) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batch.values():
                out += [(r.value, r.timestamp) for r in records
                        if accept is None or accept(r.value)]
            if on_progress:
                on_progress(len(out))
    finally:
        await consumer.stop()
    return out


def progress(label: str, total: int) -> Callable[[int], None]:
    last = [-1]

    def show(done: int) -> None:
        if done == last[0]:
            return
        last[0] = done
        width = 30
        filled = int(width * min(done, total) / max(total, 1))
        sys.stderr.write(f"\r{label:<24} [{'#' * filled}{'.' * (width - filled)}] "
                         f"{done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return show


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def report(title: str, rows: list[tuple[str, str]], figures: dict[str, Any]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n{title}")
    print("-" * (width + 24))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(json.dumps(figures, ensure_ascii=False))


async def passthrough(infra: Infra, items: list[tuple[bytes, bytes]]) -> float:
    """A consumer→producer loop with no logic: the physical limit of this broker and client."""
    src, dst = "bench.passthrough.in", "bench.passthrough.out"
    await create_topics(infra.broker.bootstrap, [src, dst], 4)
    stop = asyncio.Event()
    ready = asyncio.Event()

    async def pump() -> None:
        consumer = AIOKafkaConsumer(src, bootstrap_servers=infra.broker.bootstrap,
                                    group_id="bench-passthrough", auto_offset_reset="earliest",
                                    enable_auto_commit=False, max_poll_records=5000)
        producer = AIOKafkaProducer(bootstrap_servers=infra.broker.bootstrap, acks="all",
                                    linger_ms=5, max_batch_size=1 << 20)
        await consumer.start()
        await producer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=100, max_records=5000)
                if consumer.assignment():
                    ready.set()
                futures = [await producer.send(dst, r.value, key=r.key)
                           for records in batch.values() for r in records]
                if futures:
                    await asyncio.gather(*futures)
                    await consumer.commit()
        finally:
            await producer.stop()
            await consumer.stop()

    task = asyncio.create_task(pump())
    await asyncio.wait_for(ready.wait(), 30)
    started = time.time()
    await produce(infra.broker.bootstrap, src, items)
    got = await collect(infra.broker.bootstrap, dst, len(items), 300,
                        progress("passthrough", len(items)))
    stop.set()
    await task
    # Record timestamps are the producers' send times (same clock): last out − first in.
    return max(ts for _, ts in got) / 1000 - started
