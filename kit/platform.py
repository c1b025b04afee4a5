"""`make run`: the whole platform on one machine. Starts Tansu (unless FQ_KAFKA_BOOTSTRAP
names another broker), creates the topics, runs the four services and the workbench as
separate processes, restarts any that dies or whose /healthz fails for a while (as a
container orchestrator would: a hung process is alive and useless), and stops everything on
Ctrl-C or SIGTERM. A dev workbench account (`dev`, an admin) gets a new password each run,
printed in the banner."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from contracts.topics import all_topic_names
from kit.bus import create_topics, wait_for_broker
from kit.settings import ALL_PORTS, SERVICE_PORTS, WEB_PORTS, Settings
from kit.tansu import port_open, start_tansu

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def _dev_key(var: Path) -> str:
    key = os.environ.get("FQ_DEV_API_KEY")
    if not key:
        key = "fq_dev_" + secrets.token_urlsafe(24)
    (var / "dev-api-key").write_text(key + "\n")
    (var / "dev-api-key").chmod(0o600)
    return key


def _workbench_secret(var: Path) -> str:
    """Kept in var/ so the workbench accounts' keys (derived from it) outlive a restart."""
    if secret := os.environ.get("FQ_WORKBENCH_SECRET"):
        return secret
    path = var / "workbench-secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


DEV_USER = "dev"


def _dev_account(settings: Settings) -> str:
    """The dev admin account of the workbench, with a new password; returns the password."""
    from kit import migrate
    from kit.auth import KeyStore, auth_metadata
    from kit.db import create_engine
    from services.workbench import accounts, store

    password = secrets.token_urlsafe(9)

    async def go() -> None:
        engine = create_engine(settings.effective_database_url(), pool_size=1)
        auth_url = settings.effective_auth_database_url()
        auth_engine = (engine if auth_url == settings.effective_database_url()
                       else create_engine(auth_url, pool_size=1))
        try:
            await migrate.upgrade(engine, "workbench", store.metadata)
            await migrate.upgrade(auth_engine, "auth", auth_metadata)
            keys = KeyStore(auth_engine)
            if await store.get_user(engine, DEV_USER) is None:
                await accounts.create_user(
                    engine, keys, settings.workbench_secret, username=DEV_USER,
                    password=password, role="admin", display_name="开发管理员")
            else:
                await accounts.reset_password(engine, keys, settings.workbench_secret,
                                              DEV_USER, password)
        finally:
            await engine.dispose()
            if auth_engine is not engine:
                await auth_engine.dispose()

    asyncio.run(go())
    return password


class Platform:
    def __init__(self) -> None:
        self.settings = Settings()
        self.var = self.settings.var_dir.resolve()
        self.var.mkdir(parents=True, exist_ok=True)
        (self.var / "log").mkdir(exist_ok=True)
        self.bootstrap = os.environ.get("FQ_KAFKA_BOOTSTRAP", DEFAULT_BOOTSTRAP)
        self.embedded_broker = self.bootstrap == DEFAULT_BOOTSTRAP
        self.broker: subprocess.Popen[bytes] | None = None
        self.services: dict[str, subprocess.Popen[bytes]] = {}
        self.ports = dict(ALL_PORTS)
        self.restarts: dict[str, int] = dict.fromkeys(ALL_PORTS, 0)
        # Health: when each service was started, since when it has failed its health check
        # and since when it has passed it.
        self.started_at: dict[str, float] = {}
        self.failing_since: dict[str, float] = {}
        self.healthy_since: dict[str, float] = {}
        self.health_every = 2.0
        self.health_failure = self.settings.supervisor_health_failure_seconds
        self.start_grace = self.settings.supervisor_start_grace_seconds
        self.backoff_reset = self.settings.supervisor_backoff_reset_seconds
        self.stopping = False
        self.key = _dev_key(self.var)
        self.workbench_secret = _workbench_secret(self.var)
        self.dev_password = ""

    def create_dev_account(self) -> None:
        settings = Settings(service="workbench", var_dir=self.var,
                            workbench_secret=self.workbench_secret)
        self.dev_password = _dev_account(settings)

    def start_broker(self) -> None:
        if not self.embedded_broker:
            return
        host, port = self.bootstrap.rsplit(":", 1)
        if port_open(host, int(port)):
            raise SystemExit(f"port {port} is taken: stop what is there, or set "
                             "FQ_KAFKA_BOOTSTRAP to use that broker")
        self.broker = start_tansu(host, int(port), self.var / "log" / "tansu.log")

    def create_topics(self) -> None:
        async def go() -> None:
            await wait_for_broker(self.bootstrap, within=30)
            await create_topics(self.bootstrap, all_topic_names())
        asyncio.run(go())

    def start_service(self, name: str) -> None:
        self.services[name] = self.launch(name)
        self.started_at[name] = time.monotonic()
        self.failing_since.pop(name, None)
        self.healthy_since.pop(name, None)

    def launch(self, name: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "FQ_SERVICE": name, "FQ_KAFKA_BOOTSTRAP": self.bootstrap,
               "FQ_DEV_API_KEY": self.key, "FQ_VAR_DIR": str(self.var),
               "FQ_WORKBENCH_SECRET": self.workbench_secret}
        log = open(self.var / "log" / f"{name}.log", "ab")
        return subprocess.Popen(
            [sys.executable, "-m", "kit.cli", "serve", name], env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)

    def banner(self) -> str:
        db = self.settings.database_url or f"SQLite files under {self.var}/"
        broker = (f"Tansu (embedded, in memory) on {self.bootstrap}" if self.embedded_broker
                  else f"Kafka at {self.bootstrap}")
        lines = [
            "",
            "fengqiao is running",
            "─" * 64,
            *(f"  {n:<10} http://127.0.0.1:{p}   (docs: /docs, metrics: /metrics)"
              for n, p in SERVICE_PORTS.items()),
            *(f"  {n:<10} http://127.0.0.1:{p}   (综治中心工作台: sign in as "
              f"{DEV_USER} / {self.dev_password})" for n, p in WEB_PORTS.items()),
            f"  broker     {broker}",
            f"  database   {db}",
            f"  logs       {self.var}/log/",
            f"  API key    {self.key}",
            f"             (also in {self.var}/dev-api-key; send 'Authorization: Bearer <key>')",
            "─" * 64,
            "Ctrl-C stops everything.",
            "",
        ]
        return "\n".join(lines)

    def wait_ready(self, timeout: float = 60.0) -> bool:
        import httpx

        deadline = time.monotonic() + timeout
        pending = set(ALL_PORTS)
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                try:
                    r = httpx.get(f"http://127.0.0.1:{ALL_PORTS[name]}/readyz", timeout=1)
                    if r.status_code == 200:
                        pending.discard(name)
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
        return not pending

    def supervise(self) -> None:
        checked = time.monotonic()
        while not self.stopping:
            time.sleep(0.5)
            if time.monotonic() - checked >= self.health_every:
                checked = time.monotonic()
                self.check_health()
            if self.broker and self.broker.poll() is not None and not self.stopping:
                print("broker died; restarting it (its in-memory data is lost)", flush=True)
                self.start_broker()
                self.create_topics()
            for name, proc in list(self.services.items()):
                if proc.poll() is not None and not self.stopping:
                    self.restarts[name] += 1
                    print(f"{name} exited with {proc.returncode}; restarting "
                          f"(restart #{self.restarts[name]})", flush=True)
                    time.sleep(min(5.0, 0.5 * self.restarts[name]))
                    self.start_service(name)

    def unhealthy(self, name: str) -> str | None:
        """Why `name`'s /healthz fails (it answers an error, or not in time), or None."""
        import httpx

        try:
            r = httpx.get(f"http://127.0.0.1:{self.ports[name]}/healthz", timeout=2.0)
        except httpx.HTTPError as exc:
            return f"no answer: {type(exc).__name__}"
        if r.status_code == 200:
            return None
        try:
            stuck = r.json().get("stuck")
        except ValueError:
            stuck = None
        return f"HTTP {r.status_code}" + (f", stuck: {', '.join(stuck)}" if stuck else "")

    def check_health(self) -> None:
        """Restart a service whose health check has failed for `health_failure` seconds, and
        forget the earlier restarts of one healthy for `backoff_reset` seconds."""
        for name, proc in list(self.services.items()):
            if self.stopping or proc.poll() is not None:
                continue  # an exit is restarted by supervise()
            now = time.monotonic()
            reason = self.unhealthy(name)
            if reason is None:
                self.failing_since.pop(name, None)
                since = self.healthy_since.setdefault(name, now)
                if self.restarts[name] and now - since >= self.backoff_reset:
                    print(f"{name} healthy for {now - since:.0f} s; restart back-off reset "
                          f"(after {self.restarts[name]} restarts)", flush=True)
                    self.restarts[name] = 0
                continue
            self.healthy_since.pop(name, None)
            if now - self.started_at[name] < self.start_grace:
                continue  # still starting (migrations, a database being waited for)
            since = self.failing_since.setdefault(name, now)
            if now - since >= self.health_failure:
                print(f"{name} failed its health check for {now - since:.0f} s ({reason}); "
                      "killing it to restart it", flush=True)
                self.kill(proc)

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM (and SIGCONT, for a frozen process to receive it), SIGKILL after 10 s."""
        proc.terminate()
        try:
            os.kill(proc.pid, signal.SIGCONT)
            proc.wait(10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self, *_: object) -> None:
        if self.stopping:
            return
        self.stopping = True
        print("\nstopping fengqiao ...", flush=True)
        procs = list(self.services.values())
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.broker and self.broker.poll() is None:
            self.broker.terminate()
            try:
                self.broker.wait(5)
            except subprocess.TimeoutExpired:
                self.broker.kill()
        print("stopped.", flush=True)


def run_platform() -> int:
    platform = Platform()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        platform.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        platform.start_broker()
        platform.create_topics()
        platform.create_dev_account()
        for name in ALL_PORTS:
            platform.start_service(name)
        if not platform.wait_ready():
            print(f"warning: not every service is ready yet; see {platform.var}/log/",
                  flush=True)
        print(platform.banner(), flush=True)
        platform.supervise()
    finally:
        platform.stop()
    return 0
