"""Checks of the deployment files in deploy/, all offline.

- docker-compose.yml is valid against the Compose specification's JSON Schema and keeps
  router, mediation and notify scalable (`docker compose up --scale router=3`);
- the metrics follow Prometheus' conventions, and the Grafana dashboards and the alert
  rules use only metrics the services export;
- the dashboard JSON is what deploy/grafana/generate_dashboards.py writes, and
  docs/operations.md explains every panel and alert (the runbook the alerts link to);
- with `promtool` (Debian package `prometheus`): the Prometheus config and the PromQL of
  every dashboard panel parse, and the alert rules pass their unit tests. Without
  promtool those tests are skipped, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
PROMETHEUS_DIR = DEPLOY / "prometheus"
GRAFANA_DIR = DEPLOY / "grafana"
DASHBOARD_FILES = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
DASHBOARD_GENERATOR = GRAFANA_DIR / "generate_dashboards.py"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"

APP_SERVICES = {"intake": 8001, "router": 8002, "mediation": 8003, "notify": 8004,
                "workbench": 8005}
SCALABLE_SERVICES = ("router", "mediation", "notify")
ONE_SHOT_SERVICES = ("topics",)
DATASOURCE_UID = "prometheus"

# The metrics the services export (kit/metrics.py), as they appear in PromQL.
EXPORTED_METRICS = frozenset(
    {
        "fq_http_requests_total",
        "fq_http_request_duration_seconds",
        "fq_cases_received_total",
        "fq_cases_routed_total",
        "fq_routing_latency_seconds",
        "fq_consumer_lag_messages",
        "fq_consumer_group_lag_messages",
        "fq_consumer_group_committed_messages",
        "fq_last_progress_timestamp_seconds",
        "fq_messages_consumed_total",
        "fq_outbox_backlog_rows",
        "fq_outbox_oldest_age_seconds",
        "fq_outbox_published_total",
        "fq_outbox_failed_rows",
        "fq_outbox_set_aside_total",
        "fq_routing_corrections_total",
        "fq_cases_routed_by_category_total",
        "fq_routing_returns_total",
        "fq_dlq_messages_total",
        "fq_deliveries_total",
        "fq_delivery_attempt_duration_seconds",
        "fq_cases_open",
        "fq_cases_overdue",
        "fq_supervision_events_total",
        "fq_supervision_notices_open",
        "fq_supervision_notice_answers_total",
        "fq_supervision_notices_raised_total",
        "fq_cases_transitions_total",
        "fq_red_cases_unaccepted_overdue",
        "fq_personal_data_erased_total",
    }
)
# What prometheus_client's default process collector exports in every service.
PROCESS_METRICS = frozenset({"process_cpu_seconds_total", "process_resident_memory_bytes"})
HISTOGRAMS = frozenset({"fq_http_request_duration_seconds", "fq_routing_latency_seconds",
                        "fq_delivery_attempt_duration_seconds"})
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
METRIC_NAME = re.compile(r"\b(?:fq|process)_[a-z_]+\b")
# Grafana's built-in range variables, replaced by a fixed range for promtool.
GRAFANA_RANGE_VARS = re.compile(r"\$__(rate_interval|interval|range)\b")


def _load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _run(cmd: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def _output(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _base_name(name: str) -> str:
    """fq_x_seconds_bucket -> fq_x_seconds for the histograms; other names unchanged."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.removesuffix(suffix) in HISTOGRAMS:
            return name.removesuffix(suffix)
    return name


def _metric_names(expr: str) -> set[str]:
    return set(METRIC_NAME.findall(expr))


# ------------------------------------------------------------------ docker compose


def test_compose_file_matches_the_compose_spec() -> None:
    exe = Path(sys.executable).with_name("check-jsonschema")
    found = str(exe) if exe.exists() else shutil.which("check-jsonschema")
    assert found, "check-jsonschema is missing: it is in the dev dependency group (uv sync)"
    proc = _run([found, "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)])
    assert proc.returncode == 0, _output(proc)


def test_compose_has_no_obsolete_version_key(compose: dict[str, Any]) -> None:
    assert "version" not in compose


def test_compose_runs_every_part(services: dict[str, dict[str, Any]]) -> None:
    expected = {"kafka", "postgres", "prometheus", "grafana", *ONE_SHOT_SERVICES, *APP_SERVICES}
    assert expected <= set(services)


def test_every_service_has_a_restart_policy_and_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, svc in services.items():
        assert "restart" in svc, f"{name}: no restart policy"
        assert "healthcheck" in svc, f"{name}: no healthcheck"
        if name in ONE_SHOT_SERVICES:
            assert svc["restart"] == "no", f"{name}: a one-shot must not be restarted"
            assert svc["healthcheck"] == {"disable": True}, name
        else:
            assert svc["restart"] in ("unless-stopped", "always"), name
            assert svc["healthcheck"].get("test"), f"{name}: healthcheck without a test"
            assert not svc["healthcheck"].get("disable"), name


def test_scalable_services_have_no_fixed_name_or_host_port(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in SCALABLE_SERVICES:
        svc = services[name]
        assert "container_name" not in svc, f"{name}: container_name prevents --scale"
        for port in svc.get("ports", []):
            if isinstance(port, dict):
                assert "published" not in port, f"{name}: host port {port} prevents --scale"
            else:
                assert ":" not in str(port), f"{name}: host port {port} prevents --scale"


def test_app_services_share_one_build(services: dict[str, dict[str, Any]]) -> None:
    builds = [services[name]["build"] for name in (*APP_SERVICES, *ONE_SHOT_SERVICES)]
    assert all(build == builds[0] for build in builds), builds
    build = builds[0]
    assert build["dockerfile"] == "deploy/Dockerfile"
    context = (DEPLOY / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).is_file()
    images = {services[name].get("image") for name in (*APP_SERVICES, *ONE_SHOT_SERVICES)}
    assert len(images) == 1, images


def test_app_services_are_wired_up(services: dict[str, dict[str, Any]]) -> None:
    assert services["topics"]["command"] == ["topics", "create"]
    for name, port in APP_SERVICES.items():
        svc = services[name]
        assert svc["command"] == ["serve", name]
        env = svc["environment"]
        assert int(env["FQ_PORT"]) == port
        assert env["FQ_HOST"] == "0.0.0.0"
        for var in (
            "FQ_KAFKA_BOOTSTRAP",
            "FQ_DATABASE_URL",
            "FQ_AUTH_DATABASE_URL",
            "FQ_HASH_SECRET",
            "FQ_HOTLINE_CALLBACK_SECRET",
            "FQ_ENVIRONMENT",
            "FQ_DEV_API_KEY",
            "FQ_LOG_LEVEL",
        ):
            assert var in env, f"{name}: {var} not set"
        assert env["FQ_DATABASE_URL"].startswith("postgresql+asyncpg://")
        depends = svc["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["topics"]["condition"] == "service_completed_successfully"
        # The slim image has no curl: the healthcheck must use Python against /healthz.
        test = " ".join(svc["healthcheck"]["test"])
        assert "python" in test and "/healthz" in test and "curl" not in test, name
    intake_ports = services["intake"].get("ports", [])
    assert any(str(p).endswith(":8001") for p in intake_ports), intake_ports


def test_bind_mounts_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"


def test_dockerfile_builds_a_non_root_fengqiao_image() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert "uv sync --frozen --no-dev" in text
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        sources = line.split()[:-1]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY source {source} is not in the repository"
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    entrypoint = re.search(r"^ENTRYPOINT (.+)$", text, re.M)
    assert entrypoint and json.loads(entrypoint.group(1))[0].endswith("fengqiao")


# ------------------------------------------------------------------ prometheus


def test_prometheus_discovers_every_replica_of_every_service() -> None:
    config = _load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name, port in APP_SERVICES.items():
        (sd,) = jobs[name]["dns_sd_configs"]
        assert sd["type"] == "A"
        assert sd["names"] == [name]
        assert sd["port"] == port
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS_DIR / rule_file).is_file()
    assert "alerts.yml" in config["rule_files"]


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of deploy/prometheus/alerts.yml (also used by the e2e test)."""
    groups = _load_yaml(PROMETHEUS_DIR / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_alert_is_labelled_and_unit_tested() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), names
    tests = _load_yaml(PROMETHEUS_DIR / "alerts_test.yml")
    assert tests["rule_files"] == ["alerts.yml"]
    tested = {case["alertname"] for test in tests["tests"] for case in test["alert_rule_test"]}
    assert set(names) <= tested, f"alerts without a unit test: {set(names) - tested}"
    firing = {case["alertname"] for test in tests["tests"]
              for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert set(names) <= firing, f"alerts never shown firing: {set(names) - firing}"
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"].get("summary"), rule["alert"]
        assert rule["annotations"].get("description"), rule["alert"]


def test_alerts_cover_the_operational_risks() -> None:
    used = set().union(*(_metric_names(rule["expr"]) for rule in alert_rules()))
    for metric in (
        "fq_consumer_group_lag_messages",
        "fq_consumer_group_committed_messages",
        "fq_last_progress_timestamp_seconds",
        "fq_deliveries_total",
        "fq_outbox_oldest_age_seconds",
        "fq_dlq_messages_total",
        "fq_red_cases_unaccepted_overdue",
        "fq_cases_overdue",
    ):
        assert metric in used, f"no alert on {metric}"
    assert any(re.search(r"\bup\b", rule["expr"]) for rule in alert_rules())


def _doc_anchors() -> set[str]:
    """GitHub's anchors for the headings of docs/operations.md."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", OPERATIONS_DOC.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def test_every_alert_links_to_its_runbook_section() -> None:
    anchors = _doc_anchors()
    for rule in alert_rules():
        runbook = rule["annotations"].get("runbook", "")
        doc, _, anchor = runbook.partition("#")
        assert doc == "docs/operations.md", f"{rule['alert']}: runbook {runbook!r}"
        assert anchor == rule["alert"].lower(), f"{rule['alert']}: runbook {runbook!r}"
        assert anchor in anchors, f"docs/operations.md has no section {rule['alert']}"


# ------------------------------------------------------------------ grafana


def test_datasource_is_provisioned_with_the_uid_the_dashboards_use() -> None:
    config = _load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")
    (datasource,) = config["datasources"]
    assert datasource["uid"] == DATASOURCE_UID
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"


def test_dashboard_provider_reads_the_mounted_folder(services: dict[str, dict[str, Any]]) -> None:
    config = _load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml")
    paths = {provider["options"]["path"] for provider in config["providers"]}
    mounts = {
        v.split(":")[1]
        for v in services["grafana"]["volumes"]
        if v.startswith("./grafana/dashboards:")
    }
    assert paths and paths <= mounts, (paths, mounts)


def test_both_dashboards_exist() -> None:
    assert {p.name for p in DASHBOARD_FILES} >= {"operations.json", "governance.json"}


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_dashboards", DASHBOARD_GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


def test_dashboard_json_is_what_the_generator_writes() -> None:
    expected: dict[str, str] = _generator().rendered()
    assert set(expected) == {p.name for p in DASHBOARD_FILES}
    for name, text in expected.items():
        on_disk = (GRAFANA_DIR / "dashboards" / name).read_text(encoding="utf-8")
        assert on_disk == text, (
            f"{name} is stale: run `uv run python deploy/grafana/generate_dashboards.py`")


def _dashboard(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _query_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            panels.extend(panel.get("panels", []))
        else:
            panels.append(panel)
    return panels


class DashboardQuery(NamedTuple):
    dashboard: str
    panel: str
    ref_id: str
    expr: str


def dashboard_queries() -> list[DashboardQuery]:
    """Every query of every dashboard panel (also used by the e2e test)."""
    return [
        DashboardQuery(path.stem, panel["title"], target["refId"], target["expr"])
        for path in DASHBOARD_FILES
        for panel in _query_panels(_dashboard(path))
        for target in panel["targets"]
    ]


def _dashboard_exprs() -> list[str]:
    return [query.expr for query in dashboard_queries()]


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path: Path) -> None:
    dashboard = _dashboard(path)
    assert dashboard["uid"] and dashboard["title"]
    assert dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    panels = _query_panels(dashboard)
    assert panels
    titles = [panel["title"] for panel in panels]
    assert len(titles) == len(set(titles)), f"duplicate panel titles in {path.name}"
    for panel in panels:
        title = panel["title"]
        assert panel["type"] in ("timeseries", "stat"), title
        assert panel["description"].strip(), f"{title}: no description"
        assert panel["datasource"]["uid"] == DATASOURCE_UID, title
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] + pos["w"] <= 24, title
        targets = panel["targets"]
        assert targets, f"{title}: no targets"
        ref_ids = [target["refId"] for target in targets]
        assert len(ref_ids) == len(set(ref_ids)), title
        for target in targets:
            assert target["datasource"]["uid"] == DATASOURCE_UID, title
            assert target["expr"].strip(), f"{title}: empty query"


def test_dashboard_panels_do_not_overlap() -> None:
    for path in DASHBOARD_FILES:
        cells: dict[tuple[int, int], str] = {}
        for panel in _dashboard(path)["panels"]:
            pos = panel["gridPos"]
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    other = cells.setdefault((x, y), panel["title"])
                    assert other == panel["title"], f"{path.name}: {other} / {panel['title']}"


def test_dashboard_uids_are_unique() -> None:
    uids = [_dashboard(path)["uid"] for path in DASHBOARD_FILES]
    assert len(uids) == len(set(uids))


def test_operations_doc_explains_every_panel() -> None:
    text = OPERATIONS_DOC.read_text(encoding="utf-8")
    for path in DASHBOARD_FILES:
        for panel in _query_panels(_dashboard(path)):
            assert panel["title"] in text, f"docs/operations.md does not explain {panel['title']!r}"


# ------------------------------------------------------------------ metric names


def test_dashboards_and_alerts_use_only_exported_metrics() -> None:
    exprs = _dashboard_exprs() + [rule["expr"] for rule in alert_rules()]
    tests = _load_yaml(PROMETHEUS_DIR / "alerts_test.yml")
    exprs += [series["series"] for test in tests["tests"] for series in test["input_series"]]
    used = set().union(*(_metric_names(expr) for expr in exprs))
    known = EXPORTED_METRICS | PROCESS_METRICS
    unknown = sorted(name for name in used if _base_name(name) not in known)
    assert not unknown, f"metrics not exported by the services: {unknown}"


def test_dashboards_show_every_exported_metric() -> None:
    used = set().union(*(_metric_names(expr) for expr in _dashboard_exprs()))
    missing = sorted(EXPORTED_METRICS - {_base_name(name) for name in used})
    assert not missing, f"exported metrics no dashboard shows: {missing}"


def _fq_families() -> list[Any]:
    from prometheus_client import REGISTRY

    import kit.metrics  # noqa: F401  (registers the metrics)

    return [family for family in REGISTRY.collect() if family.name.startswith("fq_")]


def test_metric_list_matches_kit_metrics() -> None:
    """The list above is what kit/metrics.py registers (as exposed: counters get _total)."""
    exposed = {family.name + "_total" if family.type == "counter" else family.name
               for family in _fq_families()}
    assert exposed == EXPORTED_METRICS, (
        f"kit.metrics lacks {sorted(EXPORTED_METRICS - exposed)}; "
        f"not listed here (so not checked in dashboards): {sorted(exposed - EXPORTED_METRICS)}")


def test_metrics_follow_prometheus_naming_conventions() -> None:
    from prometheus_client.metrics import MetricWrapperBase

    import kit.metrics

    metrics = [m for m in vars(kit.metrics).values() if isinstance(m, MetricWrapperBase)]
    assert metrics
    for metric in metrics:
        (family,) = metric.describe()
        name = family.name
        assert re.fullmatch(r"fq_[a-z]+(_[a-z]+)*", name), f"{name}: not fq_snake_case"
        assert not re.search(r"_(ms|millis\w*|micro\w*|minutes|hours|days|kb|mb)(_|$)", name), (
            f"{name}: use base units (seconds, bytes)")
        if family.type == "histogram":
            assert name.endswith(("_seconds", "_bytes")), f"{name}: histogram without a unit"
        labels = set(metric._labelnames)
        # Prometheus would rename job/instance to exported_*; le/quantile break histograms.
        reserved = {"job", "instance", "le", "quantile"} & labels
        assert not reserved, f"{name}: reserved label names {reserved}"
        assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", label) for label in labels), (name, labels)
        assert family.documentation.strip(), f"{name}: no help text"


# ------------------------------------------------------------------ promtool


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool not found (apt-get install -y prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def test_promtool_checks_config_and_rules(promtool: str) -> None:
    proc = _run([promtool, "check", "config", "prometheus.yml"], cwd=PROMETHEUS_DIR)
    assert proc.returncode == 0, _output(proc)
    proc = _run([promtool, "check", "rules", "alerts.yml"], cwd=PROMETHEUS_DIR)
    assert proc.returncode == 0, _output(proc)


def test_promtool_alert_unit_tests(promtool: str) -> None:
    proc = _run([promtool, "test", "rules", "alerts_test.yml"], cwd=PROMETHEUS_DIR)
    assert proc.returncode == 0, _output(proc)
    assert "SUCCESS" in proc.stdout, _output(proc)


def test_promtool_parses_every_dashboard_query(promtool: str, tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:query_{i}", "expr": GRAFANA_RANGE_VARS.sub("5m", expr)}
        for i, expr in enumerate(_dashboard_exprs())
    ]
    rule_file = tmp_path / "dashboard_queries.yml"
    rule_file.write_text(
        yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}), encoding="utf-8"
    )
    proc = _run([promtool, "check", "rules", str(rule_file)])
    assert proc.returncode == 0, _output(proc)
