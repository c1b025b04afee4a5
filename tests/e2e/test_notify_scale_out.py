"""Several notify processes on one PostgreSQL database and broker share the sending: each sends
for the receivers in its shares, so every delivery arrives, none is sent by two processes at
once, each receiver's in-flight cap and each case's callback order hold, both processes send,
and when one is killed the other takes over its receivers and sends the rest."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import func, select

from services.notify.domain import message_id
from services.notify.handlers import pending_delivery
from services.notify.store import HOTLINE_FEEDBACK, SUCCEEDED, WEBHOOK, deliveries
from tests.infra import (
    AUTH,
    Isolated,
    ServiceProcess,
    eventually,
    free_port,
    insert_rows,
    read_rows,
    serve,
    service_processes,
)

pytestmark = pytest.mark.e2e

RECEIVERS = 24
PER_RECEIVER = 40
CASES = 12  # hotline cases, each with CALLBACKS callbacks that must go out in order
CALLBACKS = 4
CAP = 2  # in flight per receiver
ANSWER_SECONDS = 0.02  # each receiver takes this long to answer
SHARES = 16


@dataclass
class Arrival:
    receiver: str
    webhook_id: str
    pid: int | None
    started: float
    ended: float = 0.0


@dataclass
class Receivers:
    """Webhook receivers at /hook/{name} and a hotline at /hotline, answering 204 after
    ANSWER_SECONDS; each arrival is put down with the notify process that sent it (found from
    the connection's client port in /proc) and when it was answered."""

    senders: set[int] = field(default_factory=set)
    server_port: int = 0
    arrivals: list[Arrival] = field(default_factory=list)
    in_flight: Counter[str] = field(default_factory=Counter)
    callbacks: dict[str, list[tuple[int, Arrival]]] = field(
        default_factory=lambda: defaultdict(list))
    _pid_of_socket: dict[str | None, int | None] = field(default_factory=dict)

    def app(self) -> FastAPI:
        app = FastAPI()

        async def take(receiver: str, request: Request, case_id: str = "", seq: int = 0
                       ) -> None:
            assert request.client is not None
            inode = socket_inode(request.client.port, self.server_port)
            if self._pid_of_socket.get(inode) is None:
                self._pid_of_socket[inode] = sender_pid(inode, self.senders)
            arrival = Arrival(receiver, request.headers["webhook-id"],
                              self._pid_of_socket[inode], time.monotonic())
            self.arrivals.append(arrival)
            if case_id:
                self.callbacks[case_id].append((seq, arrival))
            self.in_flight[receiver] += 1
            await asyncio.sleep(ANSWER_SECONDS)
            self.in_flight[receiver] -= 1
            arrival.ended = time.monotonic()

        @app.post("/hook/{name}")
        async def hook(name: str, request: Request) -> Response:
            await take(name, request)
            return Response(status_code=204)

        @app.post("/hotline")
        async def hotline(request: Request) -> Response:
            body = orjson.loads(await request.body())
            await take(HOTLINE_FEEDBACK, request, body["case_id"], body["seq"])
            return Response(status_code=204)

        return app

    def ids(self, since: float = 0.0) -> Counter[str]:
        return Counter(a.webhook_id for a in self.arrivals if a.started >= since)


def socket_inode(client_port: int, server_port: int) -> str | None:
    """The inode of the client's end of a loopback connection, from /proc/net/tcp (an inode
    is never reused while the test runs, a port may be)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if (int(local.rsplit(":", 1)[1], 16) == client_port
                and int(remote.rsplit(":", 1)[1], 16) == server_port):
            return fields[9]
    return None


def sender_pid(inode: str | None, pids: Iterable[int]) -> int | None:
    """The process among `pids` holding socket `inode`."""
    if inode is None:
        return None
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:  # the process has ended
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except FileNotFoundError:  # closed since the listing
                continue
    return None


@contextmanager
def notify_processes(isolated: Isolated, count: int) -> Iterator[list[ServiceProcess]]:
    """`count` notify processes on the same database and broker, started one after another
    (each runs the migrations first)."""
    env = {"FQ_DELIVERY_MAX_IN_FLIGHT_PER_RECEIVER": str(CAP),
           "FQ_DELIVERY_SENDER_SHARES": str(SHARES), "FQ_DELIVERY_TIMEOUT_SECONDS": "5",
           "FQ_DELIVERY_BACKOFF_BASE_SECONDS": "0.2", "FQ_DELIVERY_BACKOFF_MAX_SECONDS": "1"}
    with ExitStack() as stack:
        yield [stack.enter_context(service_processes(
            {"notify": free_port()}, bootstrap=isolated.broker.bootstrap,
            database_url=isolated.database_url, var=isolated.directory, env=env))["notify"]
            for _ in range(count)]


@pytest.fixture(scope="module")
async def receivers() -> AsyncIterator[tuple[Receivers, str]]:
    got = Receivers()
    port = free_port()
    got.server_port = port
    async with serve(got.app(), port) as url:
        yield got, url


async def subscribe_all(notify_url: str, hooks: str) -> list[str]:
    async with httpx.AsyncClient(base_url=notify_url, headers=AUTH, timeout=10) as client:
        ids = []
        for n in range(RECEIVERS):
            r = await client.post("/v1/subscriptions", json={
                "name": f"r{n}", "url": f"{hooks}/hook/r{n}",
                # A jurisdiction no event has: only the deliveries queued here reach it.
                "jurisdictions": ["999999999999"]})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        return ids


async def queue(database_url: str, hooks: str, subscriptions: list[str], batch: str) -> set[str]:
    """Queue PER_RECEIVER webhooks to every subscription and CALLBACKS hotline callbacks to
    each of CASES cases, as notify's consumer would; returns their webhook-ids."""
    rows = []
    for n in range(PER_RECEIVER):
        for sub in subscriptions:
            event_id = f"{batch}-{sub}-{n}"
            rows.append(pending_delivery(WEBHOOK, sub, event_id, f"case-{batch}-{n}",
                                         "case.test", orjson.dumps({"n": n})))
    for case in range(CASES):
        case_id = f"hotline-{batch}-{case}"
        for seq in range(CALLBACKS):
            rows.append(pending_delivery(
                HOTLINE_FEEDBACK, HOTLINE_FEEDBACK, f"{case_id}-{seq}", case_id,
                "hotline.feedback", orjson.dumps({"case_id": case_id, "seq": seq}),
                url=f"{hooks}/hotline"))
    await insert_rows(database_url, deliveries, rows)
    return {message_id(row["event_id"]) for row in rows}


async def attempts_by_webhook_id(database_url: str) -> Counter[str]:
    rows = await read_rows(database_url, select(deliveries.c.event_id, deliveries.c.attempts))
    return Counter({message_id(row.event_id): row.attempts for row in rows})


def assert_never_two_at_once(arrivals: list[Arrival]) -> None:
    by_id: dict[str, list[Arrival]] = defaultdict(list)
    for arrival in arrivals:
        by_id[arrival.webhook_id].append(arrival)
    for same in by_id.values():
        for earlier, later in pairwise(same):
            assert later.started >= earlier.ended, f"sent twice at once: {same}"


async def succeeded(database_url: str) -> int:
    rows = await read_rows(database_url, select(func.count()).where(
        deliveries.c.status == SUCCEEDED))
    return int(rows[0][0])


def most_at_once(arrivals: list[Arrival]) -> Counter[str]:
    """The most requests each receiver was answering at once."""
    events: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for a in arrivals:
        events[a.receiver] += [(a.started, 1), (a.ended, -1)]
    most: Counter[str] = Counter()
    for receiver, changes in events.items():
        now = 0
        for _, change in sorted(changes):  # an end before a start at the same instant
            now += change
            most[receiver] = max(most[receiver], now)
    return most


async def assert_callbacks_in_case_order(got: Receivers, batch: str,
                                         among: list[Arrival]) -> None:
    """Every callback of each case arrived; those `among` in the order queued, each once the
    one before it was answered."""
    async def answering() -> int:
        return sum(got.in_flight.values())
    await eventually(answering, lambda n: n == 0, within=10)
    kept = {(a.webhook_id, a.started) for a in among}
    for case in range(CASES):
        calls = got.callbacks[f"hotline-{batch}-{case}"]
        assert {seq for seq, _ in calls} == set(range(CALLBACKS))
        calls = [(seq, a) for seq, a in calls if (a.webhook_id, a.started) in kept]
        assert [seq for seq, _ in calls] == sorted(seq for seq, _ in calls)
        for (_, earlier), (_, later) in pairwise(calls):
            assert later.started >= earlier.ended, \
                "a callback went out while an earlier one of its case was pending"


async def test_notify_processes_share_the_receivers_and_take_over_a_killed_one(
        isolated: Isolated, receivers: tuple[Receivers, str]) -> None:
    if isolated.database_url.startswith("sqlite"):
        pytest.skip("several notify processes send from one PostgreSQL database; on SQLite "
                    "one process sends (docs/deploy.md)")
    got, hooks = receivers
    with notify_processes(isolated, 2) as (first, second):
        pids = {first.process.pid, second.process.pid}
        got.senders.update(pids)
        subscriptions = await subscribe_all(first.url, hooks)
        await asyncio.sleep(3)  # the second process takes its fair part of the shares

        # Both running: every delivery exactly once, from both processes.
        expected = await queue(isolated.database_url, hooks, subscriptions, "a")
        await eventually(lambda: _ids(got), lambda ids: set(ids) >= expected, within=90)
        await asyncio.sleep(1)  # a second arrival of anything would come now
        counts = got.ids()
        assert set(counts) == expected
        # Exactly once per attempt (an attempt the receiver answered but the sender did not
        # hear, a reset connection, is retried), and never two at once.
        assert counts == await attempts_by_webhook_id(isolated.database_url), [
            a for a in got.arrivals if counts[a.webhook_id] > 1]
        assert_never_two_at_once(got.arrivals)
        by_pid = Counter(a.pid for a in got.arrivals)
        assert set(by_pid) == pids, by_pid
        assert min(by_pid.values()) >= len(expected) // 5, by_pid
        # Each receiver is sent by one process at a time: its cap holds across both.
        assert max(most_at_once(got.arrivals).values()) <= CAP, most_at_once(got.arrivals)
        await assert_callbacks_in_case_order(got, "a", got.arrivals)

        # One process killed while sending: the other takes over its receivers.
        second_receivers = {a.receiver for a in got.arrivals if a.pid == second.process.pid}
        expected_b = await queue(isolated.database_url, hooks, subscriptions, "b")
        await eventually(lambda: _ids(got), lambda ids: len(set(ids) & expected_b) >= 150,
                         within=60)
        second.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        second.process.wait(10)
        await eventually(lambda: _ids(got), lambda ids: set(ids) >= expected_b, within=90)
        # A request whose sender is no longer in /proc was sent by the killed process (the
        # receiver read it after the kill); the survivor's connections are all there.
        arrivals_b = [replace(a, pid=a.pid or second.process.pid)
                      for a in got.arrivals if a.webhook_id in expected_b]
        taken_over = [a for a in arrivals_b if a.started > killed_at
                      and a.receiver in second_receivers]
        assert {a.pid for a in taken_over if a.started > killed_at + 1} == {first.process.pid}
        assert min(a.started for a in taken_over) - killed_at < 10
        # Sent twice only if the killed process had it in flight (at least once).
        twice = {i for i, n in Counter(a.webhook_id for a in arrivals_b).items() if n > 1}
        for webhook_id in twice:
            senders = [a.pid for a in arrivals_b if a.webhook_id == webhook_id]
            assert senders[0] == second.process.pid and set(senders[1:]) == {
                first.process.pid}, senders
        assert len(twice) <= CAP * RECEIVERS
        # The killed process's last requests may still be answered when the survivor sends
        # them again; the survivor's own keep the cap and the order.
        survivor = [a for a in arrivals_b if a.pid == first.process.pid]
        assert max(most_at_once(survivor).values()) <= CAP, most_at_once(survivor)
        await assert_callbacks_in_case_order(got, "b", survivor)
        total = 2 * RECEIVERS * PER_RECEIVER + 2 * CASES * CALLBACKS
        assert await eventually(lambda: succeeded(isolated.database_url),
                                lambda n: n == total, within=20) == total


async def _ids(got: Receivers) -> Counter[str]:
    return got.ids()
