"""End to end: a real Prometheus scrapes the four services, run as processes on the real
broker and database, while cases flow through them; then every query of the Grafana
dashboards and every alert condition must return data, and the alerts the traffic should
trigger do.

The scrape config is the production one (deploy/prometheus/prometheus.yml) with its DNS
discovery swapped for the loopback ports and a 1 s interval, so the job labels the queries
select on are the production ones; the alert rules are deploy/prometheus/alerts.yml itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client.parser import text_string_to_metric_families

from contracts.topics import intake_topic
from kit.bus import Producer, Record
from kit.settings import SERVICE_PORTS, Settings
from services.notify.main import create as create_notify
from tests.infra import (
    AUTH,
    DEV_KEY,
    IN_CI,
    Broker,
    ServiceProcess,
    free_port,
    serve,
    service_processes,
)
from tests.test_deploy import (
    GRAFANA_RANGE_VARS,
    PROMETHEUS_DIR,
    alert_rules,
    dashboard_queries,
)

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
# Grafana's $__rate_interval is at least four scrape intervals; the whole run fits in a
# minute, so every increase the test causes is inside the window.
RANGE = "1m"
HOTLINE_TOPIC = intake_topic("hotline_12345")

# Exported by mediation's supervision scheduler, which is being built while this test is
# written: a query on one of them may be empty only while mediation exports no sample of it.
SCHEDULER_METRICS = frozenset({"fq_cases_open", "fq_cases_overdue",
                               "fq_red_cases_unaccepted_overdue", "fq_supervision_events_total"})
TRANSITIONS_ROUTE = "/v1/cases/{case_id}/transitions"
# Statuses a case reaches without anyone working it.
AUTOMATIC_STATUSES = frozenset({"reported", "routed"})
# Failures a healthy run cannot show without breaking a service: an alert condition that
# selects them is checked with the failure matcher removed (same expression over all
# requests), which proves the rest of it (metric, labels, aggregation) selects real series.
FAILURE_MATCHERS = ('{status=~"5.."}',)


# ------------------------------------------------------------------ the queries


@dataclass(frozen=True)
class Check:
    """One query to run against Prometheus, and where it comes from."""

    source: str
    expr: str

    def __str__(self) -> str:
        return self.source


def _scan(expr: str) -> Iterator[tuple[int, int]]:
    """(index, bracket depth after it) of every character outside string literals."""
    depth, i = 0, 0
    while i < len(expr):
        if expr[i] == '"':
            i = expr.index('"', i + 1) + 1
            continue
        depth += (expr[i] in "([{") - (expr[i] in ")]}")
        yield i, depth
        i += 1


def _split_top_level(expr: str) -> list[str]:
    """The operands of `expr`'s top-level and/or/unless (with their on/ignoring clause)."""
    parts, start, skip_to = [], 0, 0
    for i, depth in _scan(expr):
        if i < skip_to or depth != 0 or (i > 0 and (expr[i - 1].isalnum() or expr[i - 1] == "_")):
            continue
        found = re.match(r"(and|or|unless)\b(\s*(on|ignoring)\s*\([^)]*\))?", expr[i:])
        if found:
            parts.append(expr[start:i])
            start = skip_to = i + found.end()
    parts.append(expr[start:])
    return [" ".join(part.split()) for part in parts]


def _enclosed(expr: str) -> str | None:
    """The inside of `expr` when one pair of parentheses encloses all of it."""
    if not expr.startswith("("):
        return None
    closing = next(i for i, depth in _scan(expr) if depth == 0)
    return expr[1:-1].strip() if closing == len(expr) - 1 else None


def alert_conditions(expr: str) -> list[str]:
    """What an alert's condition is made of, as queries that must return data when the
    system runs: each and/or/unless operand (also inside a parenthesised group) without
    its comparison against a constant (`x > 0` is empty while all is well, `x` is not),
    and absent(x) read as x (absent() is empty exactly when x has data)."""
    conditions = []
    for part in _split_top_level(expr):
        part = re.sub(r"\s*(==|!=|>=|<=|>|<)\s*(bool\s+)?-?[0-9.]+(e[+-]?[0-9]+)?$", "", part)
        group = _enclosed(part)
        absent = re.fullmatch(r"absent\((.*)\)", part)
        if group is not None:
            conditions += alert_conditions(group)
        else:
            conditions.append(absent.group(1) if absent else part)
    return conditions


def _checks() -> list[Check]:
    checks = [Check(f"{q.dashboard}/{q.panel}/{q.ref_id}", GRAFANA_RANGE_VARS.sub(RANGE, q.expr))
              for q in dashboard_queries()]
    for rule in alert_rules():
        for i, condition in enumerate(alert_conditions(rule["expr"])):
            for matcher in FAILURE_MATCHERS:
                condition = condition.replace(matcher, "")
            checks.append(Check(f"alert/{rule['alert']}/{i}", condition))
    return checks


CHECKS = _checks()


def test_alert_conditions_are_split_at_the_top_level_only() -> None:
    assert alert_conditions('sum by (t) (a unless a offset 5m) > 0 or b{x="and"} == 0') == [
        "sum by (t) (a unless a offset 5m)", 'b{x="and"}']
    assert alert_conditions("absent(up{job=\"a\"}) or absent(up{job=\"b\"})") == [
        'up{job="a"}', 'up{job="b"}']
    assert alert_conditions("x > 1e3 and on (g) y < 0.5") == ["x", "y"]
    assert alert_conditions("(a > 0 or (b)) unless (c) / (d) > 0") == ["a", "b", "(c) / (d)"]
    for rule in alert_rules():
        for condition in alert_conditions(rule["expr"]):
            assert re.search(r"\b(fq_\w+|up)\b", condition), (rule["alert"], condition)


# ------------------------------------------------------------------ the running system


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        message = "prometheus not found (apt-get install -y prometheus)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {name: free_port() for name in SERVICE_PORTS}


@pytest.fixture(scope="module")
def services(broker: Broker, database_url: str, run_dir: Path, ports: dict[str, int],
             prometheus: str) -> Iterator[dict[str, ServiceProcess]]:
    """The four services as processes. Prometheus starts first: it takes 5 s to begin
    scraping, which overlaps with the services' start."""
    env = {
        # Give up a failing webhook after two quick attempts: a "dead" result in seconds.
        "FQ_DELIVERY_BACKOFF_BASE_SECONDS": "0.2", "FQ_DELIVERY_MAX_ATTEMPTS": "2",
        # Time limits in seconds, so cases become overdue and are supervised during the run.
        "FQ_ACCEPTANCE_LIMIT_SECONDS": "2", "FQ_RESOLUTION_LIMIT_SECONDS": "4",
        "FQ_SUPERVISION_INTERVAL_SECONDS": "0.2", "FQ_CASE_GAUGES_INTERVAL_SECONDS": "0.5",
        "FQ_CONSUMER_GROUP_LAG_INTERVAL_SECONDS": "1",
    }
    with service_processes(ports, bootstrap=broker.bootstrap, database_url=database_url,
                           var=run_dir / "observability", env=env) as started:
        yield started


def scrape_config(ports: dict[str, int], prometheus_address: str) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml, scraping the loopback ports every second."""
    with (PROMETHEUS_DIR / "prometheus.yml").open(encoding="utf-8") as f:
        config: dict[str, Any] = yaml.safe_load(f)
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config["rule_files"]]
    # The services this test runs, and Prometheus itself; not the workbench (it has no part
    # in the pipeline, and its own tests are tests/e2e/test_workbench.py).
    config["scrape_configs"] = [job for job in config["scrape_configs"]
                                if job["job_name"] in ports or job["job_name"] == "prometheus"]
    for job in config["scrape_configs"]:
        name = job["job_name"]
        target = f"127.0.0.1:{ports[name]}" if name in ports else prometheus_address
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [target]}]
    assert {job["job_name"] for job in config["scrape_configs"]} >= set(ports)
    return config


@pytest.fixture(scope="module")
def prometheus(prometheus_binary: str, ports: dict[str, int], run_dir: Path) -> Iterator[str]:
    """A real Prometheus with the production rules, scraping the services; yields its URL."""
    home = run_dir / "prometheus"
    home.mkdir(exist_ok=True)
    address = f"127.0.0.1:{free_port()}"
    (home / "prometheus.yml").write_text(yaml.safe_dump(scrape_config(ports, address)),
                                         encoding="utf-8")
    with running_prometheus(prometheus_binary, home, address) as url:
        yield url


@contextmanager
def running_prometheus(binary: str, home: Path, address: str) -> Iterator[str]:
    """Prometheus with `home`/prometheus.yml, its data and log in `home`, listening on
    `address`; yields its URL once it is ready, and stops it afterwards."""
    with open(home / "prometheus.log", "wb") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={home / 'prometheus.yml'}",
             f"--storage.tsdb.path={home / 'data'}", f"--web.listen-address={address}",
             "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{address}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("prometheus did not start:\n"
                            + (home / "prometheus.log").read_text(errors="replace")[-3000:])
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(prometheus + "/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    result = body["data"]["result"]
    return result if body["data"]["resultType"] in ("vector", "matrix") else [result]


def _wait_until(condition: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


async def _await(condition: Any, within: float) -> bool:
    """Poll a (sync or async) condition; True once it holds, False after `within` s."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)


class Receiver:
    """A webhook endpoint that answers 500 to its first `fail` posts (-1: to all)."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.received = 0
        self.app = FastAPI()

        @self.app.post("/hook")
        async def hook(request: Request) -> Response:
            await request.body()
            if self.fail == 0:
                self.received += 1
                return Response(status_code=204)
            if self.fail > 0:
                self.fail -= 1
            return Response(status_code=500)


@dataclass
class Observed:
    """What the traffic left behind, for the checks."""

    prometheus: str
    services: dict[str, ServiceProcess]
    case_ids: list[str]
    mediation_samples: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    transitions_api: bool = False

    def read_mediation_metrics(self) -> None:
        text = httpx.get(self.services["mediation"].url + "/metrics", timeout=5).text
        self.mediation_samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.mediation_samples.setdefault(sample.name, []).append(sample.labels)

    def why_it_may_be_empty(self, expr: str) -> str | None:
        """Why a query may return nothing while mediation is unfinished, or None."""
        for name in sorted(SCHEDULER_METRICS):
            # Every process lists every metric's HELP line: "exported" means a sample.
            if re.search(rf"\b{name}\b", expr) and name not in self.mediation_samples:
                return (f"mediation exports no {name} sample yet "
                        "(its supervision scheduler is being built)")
        if not self.transitions_api:
            for status in re.findall(r'to_status="(\w+)"', expr):
                if status not in AUTOMATIC_STATUSES:
                    return (f"mediation has no {TRANSITIONS_ROUTE} yet, so no case can "
                            f"reach {status}")
        return None


def _work_order(number: str, content: str) -> dict[str, Any]:
    # A caller of its own: a shared phone number would make the cases prior related
    # cases of each other, and raise their risk.
    return {"order_no": number, "content": content,
            "caller_phone": f"139{secrets.randbelow(10**8):08d}",
            "received_at": datetime.now(UTC).isoformat()}


# Risk, tier and department vary, so every breakdown has more than one series.
CONTENTS = (
    "邻居因为占用停车位与我发生争执，还说要找人打断我的腿。",  # red, town
    "公司拖欠我们二十多名工人三个月工资，大家准备集体上访。",  # orange, labour
    "楼上邻居每天深夜噪音扰民，多次沟通无果。",  # blue, village
    "朋友向我借款八千元，到期一直不还。",  # blue, debt
)


async def _post_cases(client: httpx.AsyncClient, intake: str, mediation: str,
                      bootstrap: str, unique: str) -> list[str]:
    """Work orders over REST (and a repeat and an invalid one), a 404, and over Kafka a
    good work order and one that is not JSON; returns the REST cases' ids."""
    orders = [_work_order(f"OBS-{unique}-{i}", content) for i, content in enumerate(CONTENTS)]
    case_ids = []
    for order in orders:
        posted = await client.post(intake + "/v1/intake/hotline_12345", json=order)
        assert posted.status_code == 202, posted.text
        case_ids.append(posted.json()["case_id"])
    again = await client.post(intake + "/v1/intake/hotline_12345", json=orders[0])
    assert again.status_code == 200, again.text
    invalid = await client.post(intake + "/v1/intake/hotline_12345",
                                json={"order_no": f"OBS-{unique}-bad"})
    assert invalid.status_code == 422, invalid.text
    missing = await client.get(f"{mediation}/v1/cases/no-such-case-{unique}")
    assert missing.status_code == 404, missing.text

    producer = Producer(bootstrap, client_id="observability-test")
    await producer.start()
    try:
        await producer.send_all([
            Record(HOTLINE_TOPIC, orjson.dumps(_work_order(f"OBS-{unique}-kafka", CONTENTS[3])),
                   key=f"OBS-{unique}-kafka"),
            Record(HOTLINE_TOPIC, b"{not json", key=f"OBS-{unique}-poison")])
    finally:
        await producer.stop()
    return case_ids


async def _work_case_to_the_end(client: httpx.AsyncClient, mediation: str,
                                case_id: str) -> None:
    """Accept, mediate, resolve, close, visit, rate and archive one case."""
    steps: list[tuple[str, dict[str, Any]]] = [
        ("accepted", {"mediator": "张调解员"}), ("in_mediation", {}),
        ("resolved", {"agreement": "双方同意错峰作息", "agreement_amount": 0}),
        ("closed", {}), ("visited", {"visit_notes": "回访：已无噪音"}),
        ("rated", {"satisfaction": 5}), ("archived", {}),
    ]
    case = (await client.get(f"{mediation}/v1/cases/{case_id}")).json()
    version = case["version"]
    for to_status, data in steps:
        response = await client.post(f"{mediation}/v1/cases/{case_id}/transitions", json={
            "to_status": to_status, "actor": "observability test", "expected_version": version,
            "data": data})
        assert response.status_code == 200, (to_status, response.text)
        version = response.json()["case"]["version"]


async def _seen_by_prometheus(prometheus: str, exprs: list[str]) -> None:
    for expr in exprs:
        assert await _await(lambda e=expr: _query(prometheus, e), 30), f"never saw {expr}"


@pytest.fixture(scope="module")
async def observed(services: dict[str, ServiceProcess], prometheus: str,
                   broker: Broker) -> AsyncIterator[Observed]:
    """Cases through the whole pipeline, a dead letter, webhook successes, retries and
    give-ups, client errors; then wait until Prometheus has scraped the results."""
    intake, mediation, notify = (services[n].url for n in ("intake", "mediation", "notify"))
    # Every target scraped at least once before any traffic, so that the counters the
    # traffic creates are seen going up, as increase() and rate() need.
    assert await _await(lambda: len(_query(prometheus, "up == 1")) == len(services) + 1, 20), \
        "not every target is up"
    unique = f"{time.time_ns():x}"
    # Each routed case is posted to both: the flaky receiver fails its first post, the
    # broken one every post, so every delivery result shows up.
    flaky, broken = Receiver(fail=1), Receiver(fail=-1)
    async with serve(flaky.app) as flaky_url, serve(broken.app) as broken_url, \
            httpx.AsyncClient(headers=AUTH, timeout=10) as client:
        subscriptions = []
        try:
            for name, url in (("flaky", flaky_url), ("broken", broken_url)):
                created = await client.post(notify + "/v1/subscriptions", json={
                    "name": f"observability {name} {unique}", "url": url + "/hook"})
                assert created.status_code == 201, created.text
                subscriptions.append(created.json()["id"])
            case_ids = await _post_cases(client, intake, mediation, broker.bootstrap, unique)

            async def routed(case_id: str) -> bool:
                response = await client.get(f"{mediation}/v1/cases/{case_id}")
                return response.status_code == 200 and response.json()["status"] == "routed"

            for case_id in case_ids:
                assert await _await(lambda c=case_id: routed(c), 30), f"{case_id} not routed"
            openapi = (await client.get(mediation + "/openapi.json")).json()
            result = Observed(prometheus, services, case_ids,
                              transitions_api=TRANSITIONS_ROUTE in openapi["paths"])
            if result.transitions_api:
                await _work_case_to_the_end(client, mediation, case_ids[2])
            assert await _await(lambda: flaky.received >= len(CONTENTS), 30), "no deliveries"
            await _seen_by_prometheus(prometheus, [
                *(f'fq_deliveries_total{{result="{r}"}}' for r in ("succeeded", "retry", "dead")),
                f'fq_dlq_messages_total{{topic="{HOTLINE_TOPIC}.dlq"}}',
                'fq_messages_consumed_total{group="intake"}',
                f"sum(fq_cases_routed_total) >= {len(CONTENTS) + 1}"])
        finally:
            for subscription in subscriptions:
                await client.delete(f"{notify}/v1/subscriptions/{subscription}")

    result.read_mediation_metrics()
    if "fq_cases_open" in result.mediation_samples:
        # The scheduler runs: with limits of seconds, the red case soon waits too long to
        # be accepted, cases go overdue and supervision is issued.
        await _seen_by_prometheus(prometheus, [
            'fq_red_cases_unaccepted_overdue{job="mediation"} > 0',
            "fq_supervision_events_total", "fq_cases_overdue > 0"])
    # One more scrape of every target after the last change, so every query sees it.
    settled = time.time()
    assert await _await(lambda: all(float(s["value"][1]) > settled + 1.1
                                    for s in _query(prometheus, "timestamp(up)")), 10), \
        "scrapes stopped"
    result.read_mediation_metrics()
    yield result


# ------------------------------------------------------------------ the checks


@pytest.mark.parametrize("check", CHECKS, ids=str)
def test_query_returns_data(observed: Observed, check: Check) -> None:
    result = _query(observed.prometheus, check.expr)
    if not result:
        reason = observed.why_it_may_be_empty(check.expr)
        if reason:
            pytest.xfail(reason)
    assert result, f"{check.source}: no data for {check.expr}"


def test_every_alert_rule_is_loaded_and_evaluates_cleanly(observed: Observed) -> None:
    response = httpx.get(observed.prometheus + "/api/v1/rules", timeout=10).json()
    loaded = {rule["name"]: rule for group in response["data"]["groups"]
              for rule in group["rules"] if rule["type"] == "alerting"}
    assert set(loaded) == {rule["alert"] for rule in alert_rules()}
    for name, rule in loaded.items():
        assert rule["health"] == "ok", (name, rule.get("lastError"))


def _alerts(prometheus: str) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = httpx.get(
        prometheus + "/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return alerts


def test_the_traffic_fires_the_alerts_it_should_and_no_others(observed: Observed) -> None:
    def firing() -> dict[str, list[dict[str, str]]]:
        found: dict[str, list[dict[str, str]]] = {}
        for alert in _alerts(observed.prometheus):
            found.setdefault(alert["labels"]["alertname"], []).append(
                {**alert["labels"], "state": alert["state"]})
        return found

    expected = {"FengqiaoDeadLetters", "FengqiaoDeliveriesGivenUp"}
    if "fq_cases_open" in observed.mediation_samples:
        expected.add("FengqiaoRedCaseUnaccepted")  # pending: its `for` is a minute
    _wait_until(lambda: expected <= set(firing()), 10, f"alerts {expected}")
    alerts = firing()
    dead_letters = {a["topic"]: a["state"] for a in alerts["FengqiaoDeadLetters"]}
    assert dead_letters.get(f"{HOTLINE_TOPIC}.dlq") == "firing", dead_letters
    # One per receiver given up on: the broken webhook, and maybe built-in targets (SMS).
    given_up = alerts["FengqiaoDeliveriesGivenUp"]
    assert given_up and all(a["state"] == "firing" and a["receiver"] for a in given_up)
    healthy = {"FengqiaoServiceDown", "FengqiaoServiceAbsent", "FengqiaoRoutingStalled",
               "FengqiaoOutboxBacklogOld", "FengqiaoHttpServerErrors",
               "FengqiaoConsumerLagGrowing", "FengqiaoConsumerStalled", "FengqiaoServiceStuck",
               "FengqiaoReplicaMissing"}
    assert not healthy & set(alerts), {name: alerts[name] for name in healthy & set(alerts)}


def _series(prometheus: str, expr: str) -> dict[str, float]:
    return {",".join(f"{k}={v}" for k, v in sorted(s["metric"].items())): float(s["value"][1])
            for s in _query(prometheus, expr)}


def test_the_metrics_tell_the_truth_about_the_traffic(observed: Observed) -> None:
    prom = observed.prometheus
    received = _series(prom, 'sum by (channel) (fq_cases_received_total{job="intake"})')
    # This run's cases (four over REST, one over Kafka); earlier tests' cases do not
    # count, since each process counts only what it received.
    assert received == {"channel=hotline_12345": len(CONTENTS) + 1}
    risks = _series(prom, 'sum by (risk) (fq_cases_routed_total{job="router"})')
    assert {"risk=red", "risk=orange", "risk=blue"} <= set(risks), risks
    # The single-report intake route, however intake names it (per channel or templated).
    statuses = _series(prom, 'sum by (status) '
                       '(fq_http_requests_total{job="intake", route=~"/v1/intake/[^/]+"})')
    assert statuses == {"status=202": len(CONTENTS), "status=200": 1, "status=422": 1}
    # Paths become their templates: a label per case id would grow without bound.
    all_routes = _series(prom, "count by (route) (fq_http_requests_total)")
    assert all(case_id not in route for route in all_routes for case_id in observed.case_ids)
    assert any("{case_id}" in route for route in all_routes), all_routes
    groups = _series(prom, "count by (group) (fq_consumer_lag_messages)")
    assert set(groups) >= {f"group={g}" for g in ("intake", "router", "mediation", "notify")}
    # At least this run's cases: the router also routes what earlier tests left unrouted.
    latency = _series(prom, 'fq_routing_latency_seconds_count{job="router"}')
    assert sum(latency.values()) >= len(CONTENTS) + 1, latency
    assert _series(prom, f'fq_dlq_messages_total{{topic="{HOTLINE_TOPIC}.dlq"}}')


async def test_a_crashing_route_is_counted_as_a_500(run_dir: Path) -> None:
    """An exception escaping a route reaches the client as a 500 and must be counted as
    one, or the error-rate panel and alert would never see a crashing route."""
    home = run_dir / "crash"
    home.mkdir(exist_ok=True)
    # No broker on this port: the app serves HTTP while its Kafka parts wait.
    settings = Settings(service="notify", kafka_bootstrap=f"127.0.0.1:{free_port()}",
                        database_url=f"sqlite+aiosqlite:///{home / 'notify.db'}",
                        var_dir=home, dev_api_key=DEV_KEY)
    app = create_notify(settings)
    crash = APIRouter()

    @crash.get("/v1/crash/{what}")
    async def crashing(what: str) -> None:
        raise RuntimeError(f"crash {what}")

    app.include_router(crash)
    async with serve(app) as url, httpx.AsyncClient() as client:
        assert (await client.get(url + "/v1/crash/now")).status_code == 500
        text = (await client.get(url + "/metrics")).text
    counted = [(sample.labels["status"], sample.value)
               for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "fq_http_requests_total"
               and sample.labels["route"] == "/v1/crash/{what}"]
    assert counted == [("500", 1.0)]


def test_a_stopped_service_is_reported_down(observed: Observed) -> None:
    """Last, since it stops the router: Prometheus sees it down and the alert goes pending
    (it fires after two minutes)."""
    router = observed.services["router"]
    router.process.terminate()
    router.process.wait(20)
    _wait_until(lambda: _query(observed.prometheus, 'up{job="router"} == 0'), 10, "router down")
    _wait_until(lambda: any(a["labels"]["alertname"] == "FengqiaoServiceDown"
                            and a["labels"]["job"] == "router"
                            for a in _alerts(observed.prometheus)), 10, "FengqiaoServiceDown")
    assert all(a["state"] == "pending" for a in _alerts(observed.prometheus)
               if a["labels"]["alertname"] == "FengqiaoServiceDown")
