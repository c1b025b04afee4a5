"""Run the fault-injection suite and print its summary table; exit 1 on any case lost, doubled
or out of order, or any dead letter.

    uv run python -m chaos.run --cases 10000 --faults 20
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chaos.check import EXPECTED_KINDS, HOOKS, Findings, check
from chaos.cluster import Cluster, can_restart_postgresql
from chaos.faults import KINDS, SQLITE_KINDS, Injector, plan
from chaos.receiver import Receiver
from chaos.stream import CaseStream
from contracts.topics import all_topic_names
from kit.bus import create_topics
from tests.infra import AUTH, ROOT, create_pg_database, drop_pg_database, serve

log = logging.getLogger("chaos")


@dataclass
class Options:
    cases: int = 10_000
    faults: int = 20
    rate: float = 80.0  # cases per second
    seed: int = 1
    max_postgres_restarts: int = 2
    settle_seconds: float = 120.0  # without progress (see settle)
    kinds: tuple[str, ...] = KINDS
    var: Path | None = None
    keep: bool = False
    sqlite: bool = False  # the embedded default: a SQLite file per service, one process each


@dataclass
class Outcome:
    options: Options
    findings: Findings | None = None
    injected: Counter[str] = field(default_factory=Counter)
    posted: int = 0
    accepted: int = 0
    attempts: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    refusals: list[str] = field(default_factory=list)
    crashes: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    settled: bool = False
    var: Path | None = None

    @property
    def ok(self) -> bool:
        return self.findings is not None and self.findings.ok and self.settled \
            and self.accepted == self.posted

    def table(self) -> str:
        o = self.options
        lines = [f"fengqiao chaos run: {o.cases} cases at {o.rate:g}/s, {o.faults} faults, "
                 f"seed {o.seed}", "", f"{'fault injected':<32}{'count':>7}"]
        lines += [f"  {kind:<30}{self.injected[kind]:>7}" for kind in KINDS
                  if kind in self.injected]
        lines += [f"  {'total':<30}{sum(self.injected.values()):>7}", ""]
        answers = ", ".join(f"{k}: {n}" for k, n in sorted(self.answers.items()))
        lines += [f"cases posted {self.posted}, accepted (2xx) {self.accepted}, "
                  f"HTTP attempts {self.attempts} ({answers})"]
        lines += [f"  refused: {refusal}" for refusal in self.refusals[:3]]
        if any(self.crashes.values()):
            lines.append("processes that exited on their own (restarted): " + ", ".join(
                f"{name} {n}" for name, n in self.crashes.items() if n))
        lines.append("")
        if self.findings is None:
            lines.append("no findings: the run did not get that far")
            return "\n".join(lines)
        f = self.findings
        lines.append(f"{'stage':<34}{'expected':>9}{'reached':>9}{'lost':>7}{'doubled':>9}"
                     f"{'out of order':>14}")
        for s in f.stages:
            lines.append(f"{s.name:<34}{s.expected:>9}{s.reached:>9}{len(s.lost):>7}"
                         f"{len(s.doubled):>9}{len(s.out_of_order):>14}"
                         + (f"   {s.note}" if s.note else ""))
        lines.append(f"{'total':<34}{'':>9}{'':>9}{f.lost:>7}{f.doubled:>9}"
                     f"{f.out_of_order:>14}")
        lines.append("")
        lines.append("dead letters: " + (", ".join(f"{t} {n}" for t, n in f.dead_letters.items()
                                                   if n) or "none"))
        lines.append("copies republished on topics (skipped or deduplicated by consumers): " + ", ".join(
            f"{t} {n}" for t, n in f.republished.items()))
        lines.append("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items()))
        lines += f.examples()
        if not self.settled:
            lines.append("the platform did not settle within the time allowed")
        verdict = "PASS" if self.ok else "FAIL"
        lines.append(f"RESULT: {verdict} ({f.lost} lost, {f.doubled} doubled, "
                     f"{f.out_of_order} out of order)")
        return "\n".join(lines)


async def subscribe(cluster: Cluster, hooks_url: str) -> dict[str, str]:
    """One webhook subscription per hook of chaos.check.HOOKS, every department."""
    ids = {}
    async with httpx.AsyncClient(headers=AUTH, timeout=10) as client:
        for name, kinds in HOOKS.items():
            r = await client.post(cluster.notify_url + "/v1/subscriptions", json={
                "name": f"chaos {name}", "url": f"{hooks_url}/hooks/{name}", "kinds": kinds})
            r.raise_for_status()
            ids[name] = r.json()["id"]
    return ids


async def progress(engine: AsyncEngine) -> tuple[int, ...]:
    """(rows waiting in outboxes, cases stored, cases routed, webhook deliveries, pending)."""
    queries = [
        "SELECT (SELECT count(*) FROM intake_outbox) + (SELECT count(*) FROM router_outbox)"
        " + (SELECT count(*) FROM mediation_outbox) + (SELECT count(*) FROM notify_outbox)",
        "SELECT count(*) FROM intake_cases",
        "SELECT count(*) FROM mediation_cases WHERE status = 'routed'",
        "SELECT count(*) FROM notify_deliveries WHERE target = 'webhook'",
        "SELECT count(*) FROM notify_deliveries WHERE status = 'pending'"]
    async with engine.connect() as conn:
        return tuple([int((await conn.execute(text(q))).scalar_one()) for q in queries])


SETTLE_AT_MOST_SECONDS = 1800.0


async def settle(engine: AsyncEngine, within: float) -> bool:
    """Wait until nothing is waiting anywhere and the counts stop moving. `within` is how
    long the counts may stand still before giving up: a slow machine takes longer to catch
    up, and that is not a loss; a platform that stopped making progress is."""
    started = time.monotonic()
    deadline = started + within
    last: tuple[int, ...] = ()
    steady = 0
    while time.monotonic() < min(deadline, started + SETTLE_AT_MOST_SECONDS):
        try:
            now = await progress(engine)
        except Exception as exc:  # noqa: BLE001 - the database may still be coming back
            log.info("waiting for the database: %r", exc)
            await asyncio.sleep(1)
            continue
        waiting, stored, routed, webhooks, pending = now
        steady = steady + 1 if now == last else 0
        if now != last:
            deadline = time.monotonic() + within
        last = now
        log.info("settling: outboxes %d, stored %d, routed %d, webhook deliveries %d, "
                 "pending %d", waiting, stored, routed, webhooks, pending)
        expected_webhooks = stored * sum(len(kinds) for kinds in EXPECTED_KINDS.values())
        if waiting == 0 and pending == 0 and routed >= stored \
                and webhooks >= expected_webhooks and steady >= 3:
            return True
        await asyncio.sleep(1)
    return False


async def run(options: Options) -> Outcome:
    outcome = Outcome(options)
    rng = random.Random(options.seed)
    run_id = uuid.uuid4().hex[:6]
    var = options.var or ROOT / "var" / "chaos" / time.strftime("%Y%m%d-%H%M%S")
    outcome.var = var
    max_postgres = options.max_postgres_restarts if can_restart_postgresql() else 0
    if max_postgres == 0 and options.max_postgres_restarts and not options.sqlite:
        log.warning("no pg_ctlcluster here: PostgreSQL restarts are left out")
    url, database = ("sqlite", "") if options.sqlite else await create_pg_database()
    cluster = Cluster(var, url, env={
        # Every published row is kept through the run: each broker restart replays them all.
        "FQ_OUTBOX_RETENTION_SECONDS": "7200",
        "FQ_DELIVERY_BACKOFF_BASE_SECONDS": "0.2", "FQ_DELIVERY_BACKOFF_MAX_SECONDS": "2"})
    engine = cluster.engine()
    receiver = Receiver()
    started = time.monotonic()
    supervisor: asyncio.Task[None] | None = None
    log.info("logs and broker log in %s; database %s", var, database)
    try:
        async with serve(receiver.app) as hooks_url:
            await cluster.start_broker()
            await create_topics(cluster.broker.bootstrap, all_topic_names())
            await cluster.start_all()
            supervisor = asyncio.create_task(cluster.supervise())
            subscriptions = await subscribe(cluster, hooks_url)
            outcome.timings["start"] = time.monotonic() - started

            stream = CaseStream(cluster.intake_url, options.cases, options.rate, run_id,
                                options.seed)
            window = options.cases / options.rate
            faults = plan(options.faults, window, rng, max_postgres, options.kinds)
            injector = Injector(cluster, engine, rng)
            t = time.monotonic()
            await asyncio.gather(stream.run(), injector.run(faults))
            outcome.timings["stream and faults"] = time.monotonic() - t
            outcome.injected = injector.injected
            outcome.posted = stream.posted
            outcome.accepted = len(stream.accepted)
            outcome.attempts = sum(r.attempts for r in stream.reports)
            outcome.answers = Counter()
            for report in stream.reports:
                outcome.answers.update(report.answers)
            outcome.refusals = [f"{r.external_id}: {r.refusal}" for r in stream.reports
                                if r.refusal]

            t = time.monotonic()
            outcome.settled = await settle(engine, options.settle_seconds)
            outcome.timings["settle"] = time.monotonic() - t
            t = time.monotonic()
            outcome.findings = await check(engine, cluster.broker.bootstrap, stream.reports,
                                           receiver, subscriptions)
            outcome.timings["count"] = time.monotonic() - t
    finally:
        if supervisor is not None:
            supervisor.cancel()
        outcome.crashes = {i.name: i.crashes for i in cluster.instances}
        cluster.stop_all()
        await cluster.stop_broker()
        await engine.dispose()
        if database and not options.keep:
            await drop_pg_database(database)
        outcome.timings["total"] = time.monotonic() - started
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=Options.cases)
    parser.add_argument("--faults", type=int, default=Options.faults)
    parser.add_argument("--rate", type=float, default=Options.rate, help="cases per second")
    parser.add_argument("--seed", type=int, default=Options.seed)
    parser.add_argument("--max-postgres-restarts", type=int,
                        default=Options.max_postgres_restarts,
                        help="PostgreSQL restarts at most (the cluster may be shared)")
    parser.add_argument("--settle-seconds", type=float, default=Options.settle_seconds,
                        help="how long the counts may stand still while settling")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help="comma-separated fault kinds to draw from (default: all): "
                        + ", ".join(KINDS))
    parser.add_argument("--var", type=Path, default=None,
                        help="where the logs go (default var/chaos/<time>)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--sqlite", action="store_true",
                        help="the embedded default: a SQLite file per service, one process "
                        "each (no PostgreSQL restarts, no rebalances)")
    args = parser.parse_args(argv)
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    if args.sqlite:
        kinds = tuple(k for k in kinds if k in SQLITE_KINDS)
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        parser.error(f"unknown fault kinds: {sorted(unknown)}; known: {', '.join(KINDS)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("httpx", "aiokafka", "uvicorn", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    options = Options(cases=args.cases, faults=args.faults, rate=args.rate, seed=args.seed,
                      max_postgres_restarts=args.max_postgres_restarts,
                      settle_seconds=args.settle_seconds, kinds=kinds, var=args.var,
                      keep=args.keep, sqlite=args.sqlite)
    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # so that the processes, broker and database are cleaned up

    signal.signal(signal.SIGTERM, terminate)
    outcome = asyncio.run(run(options))
    print(outcome.table())
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
