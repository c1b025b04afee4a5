"""The Grafana dashboards, as code: this file writes deploy/grafana/dashboards/*.json.

    uv run python deploy/grafana/generate_dashboards.py          # rewrite the JSON files
    uv run python deploy/grafana/generate_dashboards.py --check  # exit 1 if they are stale

Edit the panels here, never the JSON. tests/test_deploy.py fails when the JSON files are
not what this script writes, and tests/e2e/test_observability.py runs every query below
against a real Prometheus scraping the running services. docs/operations.md says what each
panel means and what to do about it; keep the titles there in step.

Conventions: `$__rate_interval` in rates (Grafana makes it at least four scrape
intervals); gauges that every replica may report for the same thing (consumer lag after a
rebalance, outbox figures, case counts read from the shared database) are folded with
`max by` the thing's own labels before summing, so that scaling a service out does not
multiply them; ratios whose numerator counts failures use `or 0 * denominator`, so that
"no failures" draws a 0 line instead of "No data".
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
SERVICES = 'job=~"intake|router|mediation|notify"'
RUNBOOK = "Runbook: docs/operations.md"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: Literal["timeseries", "stat"] = "timeseries"
    width: int = 12
    height: int = 0  # 0: 5 for a stat, 8 for a timeseries
    # (value, colour) steps above the base colour; a timeseries draws them as lines.
    thresholds: tuple[tuple[float, str], ...] = ()
    base_colour: str = "green"
    # legend text -> fixed colour, e.g. risk levels in their own colours
    colours: dict[str, str] = field(default_factory=dict)
    stack: bool = False
    max: float | None = None


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    tags: tuple[str, ...]
    time_from: str
    refresh: str
    rows: tuple[Row, ...]


def q(expr: str, legend: str = "") -> Query:
    return Query(" ".join(expr.split()), legend)


def rate(selector: str) -> str:
    return f"rate({selector}[$__rate_interval])"


def total_rate(selector: str) -> str:
    return f"sum({rate(selector)})"


def failure_ratio(by: str, failures: str, everything: str) -> str:
    """Share of `everything` that matches `failures`, 0 (not "No data") when none failed."""
    total = f"sum by ({by}) ({rate(everything)})" if by else f"sum({rate(everything)})"
    failed = f"sum by ({by}) ({rate(failures)})" if by else f"sum({rate(failures)})"
    return f"({failed} or 0 * {total}) / {total}"


# Consumer lag as each consumer reports it: one series per partition, whichever replica
# reports it. A consumer that hangs stops reporting its own.
LAG_BY_PARTITION = "max by (group, topic, partition) (fq_consumer_lag_messages)"
# Consumer lag as the broker sees it (committed offsets), read by every service process.
GROUP_LAG = "max by (group, topic) (fq_consumer_group_lag_messages)"
RESOLVED_7D = 'sum(increase(fq_cases_transitions_total{to_status="resolved"}[7d]))'
CLOSED_7D = 'sum(increase(fq_cases_transitions_total{to_status="closed"}[7d]))'
RECEIVED_7D = "sum(increase(fq_cases_received_total[7d]))"
OPEN = "max by (tier, department) (fq_cases_open)"
OVERDUE = "max by (tier, department) (fq_cases_overdue)"
# Every process exports this unlabelled gauge (at 0 outside mediation): read mediation's,
# so that "mediation is down" shows as no data rather than as a reassuring 0.
RED_UNACCEPTED = 'max(fq_red_cases_unaccepted_overdue{job="mediation"})'
PROCESS_CPU = f"process_cpu_seconds_total{{{SERVICES}}}"
RISK_COLOURS = {"red": "red", "orange": "orange", "yellow": "yellow", "blue": "blue"}


OPERATIONS = Dashboard(
    uid="fengqiao-operations",
    title="fengqiao · Operations",
    description="For the on-call engineer: is every case flowing from intake to the "
    "departments, how fast, and where is it stuck. " + RUNBOOK,
    tags=("fengqiao", "operations"),
    time_from="now-3h",
    refresh="30s",
    rows=(
        Row("At a glance", (
            Panel("Replicas up",
                  "Replicas of each service that answered their last scrape. 0 means the "
                  "service is down (alert FengqiaoServiceDown / FengqiaoServiceAbsent).",
                  (q(f"sum by (job) (up{{{SERVICES}}})", "{{job}}"),),
                  kind="stat", width=4, base_colour="red", thresholds=((1, "green"),)),
            Panel("HTTP 5xx ratio (5 m)",
                  "Share of API requests answered with a server error over the last 5 "
                  "minutes, all services. Anything above 0 deserves a look at the logs.",
                  (q('(sum(rate(fq_http_requests_total{status=~"5.."}[5m])) or vector(0)) '
                     "/ sum(rate(fq_http_requests_total[5m]))", "5xx"),),
                  kind="stat", unit="percentunit", width=4,
                  thresholds=((0.001, "orange"), (0.05, "red"))),
            Panel("Consumer lag",
                  "Messages waiting per consumer group (not yet committed, as the broker "
                  "sees it). Normally close to 0; a number that keeps growing means the group "
                  "cannot keep up or is stuck.",
                  (q(f"sum by (group) ({GROUP_LAG})", "{{group}}"),),
                  kind="stat", width=4, thresholds=((1000, "orange"), (10000, "red"))),
            Panel("Oldest unpublished outbox row",
                  "Age of the oldest event each service has committed but not yet "
                  "published to Kafka. Over 60 s for 5 minutes fires FengqiaoOutboxBacklogOld.",
                  (q("max by (service) (fq_outbox_oldest_age_seconds)", "{{service}}"),),
                  kind="stat", unit="s", width=4, thresholds=((30, "orange"), (60, "red"))),
            Panel("Dead-lettered (1 h)",
                  "Messages moved to a .dlq topic in the last hour. Each one is a message "
                  "that could not be processed and needs a person (FengqiaoDeadLetters).",
                  (q("sum(increase(fq_dlq_messages_total[1h])) or vector(0)", "dead letters"),),
                  kind="stat", width=4, thresholds=((1, "orange"),)),
            Panel("Deliveries given up (1 h)",
                  "Deliveries (webhooks, hotline result feedback, SMS) that failed every "
                  "attempt in the last hour: someone did not get their notification "
                  "(FengqiaoDeliveriesGivenUp).",
                  (q('sum(increase(fq_deliveries_total{result="dead"}[1h])) or vector(0)',
                     "given up"),),
                  kind="stat", width=4, thresholds=((1, "red"),)),
        )),
        Row("Flow", (
            Panel("Cases through the pipeline / s",
                  "The same cases at each stage: accepted by intake, routed by the router, "
                  "recorded as routed by mediation, delivered by notify (one per matching "
                  "subscription or other target). The lines should overlap; one falling behind the others "
                  "shows the stage that is stuck.",
                  (q(total_rate("fq_cases_received_total"), "received (intake)"),
                   q(total_rate("fq_cases_routed_total"), "routed (router)"),
                   q(total_rate('fq_cases_transitions_total{to_status="routed"}'),
                     "recorded as routed (mediation)"),
                   q(total_rate('fq_deliveries_total{result="succeeded"}'),
                     "delivered (notify)")),
                  unit="ops"),
            Panel("Routing latency, receipt → routed",
                  "Time from a case's receipt to the router's decision (first routing only), "
                  "p50 and p99. The target is p99 under 250 ms at 500 cases/s. Receipt is the "
                  "time the channel reports (a hotline's received_at), so a channel sending "
                  "old work orders raises it too.",
                  (q("histogram_quantile(0.5, sum by (le) "
                     f"({rate('fq_routing_latency_seconds_bucket')}))", "p50"),
                   q("histogram_quantile(0.99, sum by (le) "
                     f"({rate('fq_routing_latency_seconds_bucket')}))", "p99")),
                  unit="s", thresholds=((0.25, "red"),)),
            Panel("Messages consumed / s (in)",
                  "Kafka messages each consumer group handles, by topic: the flow into "
                  "each service. Dead-lettered messages count here too.",
                  (q(f"sum by (group, topic) ({rate('fq_messages_consumed_total')})",
                     "{{group}} ← {{topic}}"),),
                  unit="ops"),
            Panel("Events published / s (out)",
                  "Events each service's outbox relay publishes to Kafka: the flow out of "
                  "each service.",
                  (q(f"sum by (service) ({rate('fq_outbox_published_total')})",
                     "{{service}}"),),
                  unit="ops"),
            Panel("Cases received / s by channel",
                  "Reports accepted by intake (REST and Kafka-native), by channel. A "
                  "channel dropping to 0 at a time it is usually busy points at that "
                  "channel's sending system.",
                  (q(f"sum by (channel) ({rate('fq_cases_received_total')})", "{{channel}}"),),
                  unit="ops", stack=True),
            Panel("Cases routed / s by tier",
                  "Routing decisions by the tier they assign.",
                  (q(f"sum by (tier) ({rate('fq_cases_routed_total')})", "{{tier}}"),),
                  unit="ops", stack=True),
        )),
        Row("Kafka consumers", (
            Panel("Consumer lag by group and topic",
                  "Messages behind the end of each topic, per consumer group: the group's "
                  "committed offsets against the log-end offsets, read from the broker by "
                  "every service (not by the consumer, which cannot report itself hung). "
                  "Growing for 10 minutes above 1000 fires FengqiaoConsumerLagGrowing; "
                  "waiting with no commit for 5 minutes fires FengqiaoConsumerStalled.",
                  (q(GROUP_LAG, "{{group}} ← {{topic}}"),),
                  thresholds=((1000, "orange"),)),
            Panel("Consumer lag, worst partitions",
                  "The ten partitions furthest behind, as their consumers report them after "
                  "each poll (a hung consumer stops reporting). One partition far behind the "
                  "others points at a hot key or a stuck replica, not at overall load.",
                  (q(f"topk(10, {LAG_BY_PARTITION})",
                     "{{group}} ← {{topic}} [{{partition}}]"),)),
            Panel("Messages committed / s by group",
                  "Offsets each consumer group commits, read from the broker (sum over its "
                  "topics). Flat 0 while its lag is above 0: the group is stuck "
                  "(FengqiaoConsumerStalled).",
                  (q("sum by (group) (max by (group, topic) "
                     "(rate(fq_consumer_group_committed_messages[$__rate_interval])))",
                     "{{group}}"),),
                  unit="ops"),
            Panel("Seconds since progress by activity",
                  "For each consumer loop, outbox relay and leader job of each replica, the "
                  "seconds since it last made progress (idle counts). Over 120 s its /healthz "
                  "fails; over 300 s fires FengqiaoServiceStuck.",
                  (q("max by (job, instance, activity) "
                     "(time() - fq_last_progress_timestamp_seconds)",
                     "{{job}} {{instance}} {{activity}}"),),
                  unit="s", thresholds=((120, "orange"), (300, "red"))),
            Panel("Dead-lettered messages / s by topic",
                  "Messages sent to a dead-letter topic, by that topic (<topic>.dlq). The "
                  "reason is in each record's fq-dlq-reason header.",
                  (q(f"sum by (topic) ({rate('fq_dlq_messages_total')})", "{{topic}}"),),
                  unit="ops", base_colour="orange", width=24),
        )),
        Row("Outbox", (
            Panel("Outbox backlog",
                  "Events committed to each service's outbox table and not yet published. "
                  "It rises in bursts and drains within a second while the broker is up.",
                  (q("max by (service) (fq_outbox_backlog_rows)", "{{service}}"),)),
            Panel("Oldest unpublished outbox row by service",
                  "Age of the oldest unpublished event. It stays near 0 while the relay "
                  "works; a steady climb means the relay cannot reach the broker or no "
                  "replica holds the relay's lock.",
                  (q("max by (service) (fq_outbox_oldest_age_seconds)", "{{service}}"),),
                  unit="s", thresholds=((60, "red"),)),
            Panel("Outbox rows set aside",
                  "Rows the relay gave up on (the broker refused them, or they alone kept "
                  "failing), waiting for an operator, and how many were set aside in the "
                  "last hour. Anything above 0 fires FengqiaoOutboxRowsSetAside.",
                  (q("max by (service) (fq_outbox_failed_rows)", "{{service}} waiting"),
                   q("sum by (service) (increase(fq_outbox_set_aside_total[1h]))",
                     "{{service}} set aside (1 h)")),
                  thresholds=((1, "red"),), width=24),
        )),
        Row("HTTP APIs", (
            Panel("Requests / s by service and status",
                  "API requests served (health and metrics endpoints excluded).",
                  (q(f"sum by (service, status) ({rate('fq_http_requests_total')})",
                     "{{service}} {{status}}"),),
                  unit="reqps"),
            Panel("Server error (5xx) ratio by route",
                  "Share of each route's requests answered 5xx. Above 5% with more than 5 "
                  "errors in 5 minutes fires FengqiaoHttpServerErrors.",
                  (q(failure_ratio("service, route", 'fq_http_requests_total{status=~"5.."}',
                                   "fq_http_requests_total"), "{{service}} {{route}}"),),
                  unit="percentunit", max=1, thresholds=((0.05, "red"),)),
            Panel("Client error (4xx) ratio by route",
                  "Share of each route's requests refused as invalid (422), unauthorised "
                  "(401/403) or not found. A jump on an intake route usually means a "
                  "partner system changed its payload or lost its API key.",
                  (q(failure_ratio("service, route", 'fq_http_requests_total{status=~"4.."}',
                                   "fq_http_requests_total"), "{{service}} {{route}}"),),
                  unit="percentunit", max=1),
            Panel("Latency p99 by route",
                  "99th percentile of API response time per route.",
                  (q("histogram_quantile(0.99, sum by (service, route, le) "
                     f"({rate('fq_http_request_duration_seconds_bucket')}))",
                     "{{service}} {{route}}"),),
                  unit="s"),
            Panel("Latency p50 by route",
                  "Median API response time per route.",
                  (q("histogram_quantile(0.5, sum by (service, route, le) "
                     f"({rate('fq_http_request_duration_seconds_bucket')}))",
                     "{{service}} {{route}}"),),
                  unit="s", width=24),
        )),
        Row("Notifications", (
            Panel("Delivery attempts / s by result",
                  "Each attempt to deliver a notification (webhook, hotline result "
                  "feedback, SMS): succeeded, retry (failed, tried again later with "
                  "backoff) or dead (failed its last attempt).",
                  (q(f"sum by (result) ({rate('fq_deliveries_total')})", "{{result}}"),),
                  unit="ops", colours={"succeeded": "green", "retry": "orange",
                                       "dead": "red"}),
            Panel("Delivery attempt latency p99 by target",
                  "How long one delivery attempt takes, by target (webhook, hotline result "
                  "feedback, SMS gateway). A slow receiver costs only its own attempts, but a "
                  "p99 near the timeout means attempts are timing out.",
                  (q("histogram_quantile(0.99, sum by (target, le) "
                     f"({rate('fq_delivery_attempt_duration_seconds_bucket')}))", "{{target}}"),),
                  unit="s"),
            Panel("Delivery attempts failing",
                  "Share of delivery attempts that failed (retry or dead), by receiver "
                  "(a subscription id, or hotline_feedback / sms). Over half for a receiver, for 2 "
                  "minutes, fires FengqiaoDeliveriesFailing.",
                  (q(failure_ratio("receiver", 'fq_deliveries_total{result=~"retry|dead"}',
                                   "fq_deliveries_total"), "{{receiver}}"),),
                  unit="percentunit", max=1, thresholds=((0.2, "orange"), (0.5, "red"))),
        )),
        Row("Processes", (
            Panel("CPU per replica",
                  "CPU seconds per second used by each service process (1 = one core).",
                  (q(f"sum by (job, instance) ({rate(PROCESS_CPU)})", "{{job}} {{instance}}"),),
                  unit="short"),
            Panel("Resident memory per replica",
                  "Resident memory of each service process.",
                  (q(f"max by (job, instance) (process_resident_memory_bytes{{{SERVICES}}})",
                     "{{job}} {{instance}}"),),
                  unit="bytes"),
        )),
    ),
)


GOVERNANCE = Dashboard(
    uid="fengqiao-governance",
    title="fengqiao · Governance (综治)",
    description="For the centre's duty officer: what arrives, where it goes, what is open, "
    "overdue or supervised, and how cases end. The authoritative figures for reports are "
    "mediation's GET /v1/stats; these are the live trend. " + RUNBOOK,
    tags=("fengqiao", "governance"),
    time_from="now-7d",
    refresh="1m",
    rows=(
        Row("Now", (
            Panel("Open cases", "Cases routed and not yet closed (all tiers and departments).",
                  (q(f"sum({OPEN})", "open"),),
                  kind="stat", width=4, base_colour="blue"),
            Panel("Overdue cases",
                  "Open cases past their acceptance or resolution time limit.",
                  (q(f"sum({OVERDUE})", "overdue"),),
                  kind="stat", width=4, thresholds=((1, "orange"),)),
            Panel("Red-risk cases not accepted within 2 h",
                  "Red-risk cases (threats of violence or extreme acts) that nobody has "
                  "accepted within their 2-hour limit. Must be 0 "
                  "(FengqiaoRedCaseUnaccepted).",
                  (q(RED_UNACCEPTED, "red, unaccepted"),),
                  kind="stat", width=4, thresholds=((1, "red"),)),
            Panel("Cases received (24 h)", "Reports accepted by intake in the last 24 hours.",
                  (q("sum(increase(fq_cases_received_total[24h]))", "received"),),
                  kind="stat", width=4, base_colour="blue"),
            Panel("Resolution rate 化解率 (7 d)",
                  "Cases resolved ÷ cases closed, over the last 7 days.",
                  (q(f"{RESOLVED_7D} / {CLOSED_7D}", "化解率"),),
                  kind="stat", unit="percentunit", width=4, base_colour="blue"),
            Panel("Closure rate 办结率 (7 d)",
                  "Cases closed ÷ cases received, over the last 7 days.",
                  (q(f"{CLOSED_7D} / {RECEIVED_7D}", "办结率"),),
                  kind="stat", unit="percentunit", width=4, base_colour="blue"),
        )),
        Row("Intake and routing", (
            Panel("Cases received per hour by channel",
                  "Reports accepted in the trailing hour, by channel (12345 hotline, grid, "
                  "police, court, petition, walk-in, Open311).",
                  (q("sum by (channel) (increase(fq_cases_received_total[1h]))",
                     "{{channel}}"),),
                  stack=True),
            Panel("Cases routed per hour by tier",
                  "Routing decisions in the trailing hour by tier: small matters should "
                  "stay in the village, big matters in the town (小事不出村、大事不出镇).",
                  (q("sum by (tier) (increase(fq_cases_routed_total[1h]))", "{{tier}}"),),
                  stack=True),
            Panel("Cases routed per hour by risk",
                  "Routing decisions in the trailing hour by risk level.",
                  (q("sum by (risk) (increase(fq_cases_routed_total[1h]))", "{{risk}}"),),
                  stack=True, colours=RISK_COLOURS),
            Panel("Cases routed per hour by lead department (top 10)",
                  "Routing decisions in the trailing hour by lead department.",
                  (q("topk(10, sum by (department) (increase(fq_cases_routed_total[1h])))",
                     "{{department}}"),)),
        )),
        Row("Caseload and time limits", (
            Panel("Open cases by tier", "Cases not yet closed, by tier.",
                  (q(f"sum by (tier) ({OPEN})", "{{tier}}"),), stack=True),
            Panel("Open cases by department (top 10)",
                  "Cases not yet closed, by lead department.",
                  (q(f"topk(10, sum by (department) ({OPEN}))", "{{department}}"),)),
            Panel("Overdue cases by tier", "Open cases past a time limit, by tier.",
                  (q(f"sum by (tier) ({OVERDUE})", "{{tier}}"),), stack=True),
            Panel("Overdue cases by department (top 10)",
                  "Open cases past a time limit, by lead department. A line that keeps "
                  "rising fires FengqiaoOverdueCasesRising.",
                  (q(f"topk(10, sum by (department) ({OVERDUE}))", "{{department}}"),)),
            Panel("Red-risk cases not accepted within 2 h, over time",
                  "Any value above 0 is a red-risk case waiting too long to be accepted.",
                  (q(RED_UNACCEPTED, "red, unaccepted"),),
                  thresholds=((1, "red"),)),
            Panel("Supervision events per hour by level",
                  "Supervision (督办) issued in the trailing hour: warning at 80% of a "
                  "limit, level 1 when overdue, level 2 (to the tier above) at twice the "
                  "limit.",
                  (q("sum by (level) (increase(fq_supervision_events_total[1h]))",
                     "{{level}}"),),
                  stack=True, colours={"warning": "yellow", "level_1": "orange",
                                       "level_2": "red"}),
        )),
        Row("Supervision by hand", (
            Panel("Open supervision notices by level",
                  "Supervision notices leaders issued by hand and not yet answered (反馈): "
                  "reminder 提示, urge 催办, supervise 督办, listed 挂牌督办. An answer missed "
                  "raises a notice one level.",
                  (q("sum by (level) (fq_supervision_notices_open)", "{{level}}"),),
                  stack=True, colours={"reminder": "green", "urge": "yellow",
                                       "supervise": "orange", "listed": "red"}),
            Panel("Open supervision notices by department (top 10)",
                  "Unanswered notices by the department they press (the case's lead "
                  "department when the notice was issued).",
                  (q("topk(10, sum by (department) (fq_supervision_notices_open))",
                     "{{department}}"),)),
            Panel("Supervision notices answered on time (7 d)",
                  "Answers to supervision notices in the trailing 7 days that came by their "
                  "deadline, of all answers; and the notices raised a level after a missed "
                  "answer per day.",
                  (q('sum(increase(fq_supervision_notice_answers_total{on_time="true"}[7d])) / '
                     "sum(increase(fq_supervision_notice_answers_total[7d]))", "on time"),),
                  unit="percentunit", max=1),
            Panel("Supervision notices raised per day by level",
                  "Notices whose answer was missed, raised to the level shown, in the trailing "
                  "24 hours: the leader was told each time.",
                  (q("sum by (level) (increase(fq_supervision_notices_raised_total[1d]))",
                     "{{level}}"),), stack=True),
        )),
        Row("Corrections", (
            Panel("Routing corrections per day by kind",
                  "Routings staff corrected in the trailing 24 hours: returns by the lead "
                  "department (退回), reassignments (改派) and dispatches by hand (人工分派). "
                  "A rise after a rules change points at the change; the router's "
                  "GET /v1/routing/corrections lists the cases.",
                  (q("sum by (kind) (increase(fq_routing_corrections_total[1d]))",
                     "{{kind}}"),), stack=True),
            Panel("Return rate by category (1 d)",
                  "Share of each category's first routings in the trailing day that a lead "
                  "department returned (退回). Twice the category's 7-day rate, with at least "
                  "5 returns, fires FengqiaoReturnRateDoubled.",
                  (q("sum by (category) (increase(fq_routing_returns_total[1d])) / "
                     "sum by (category) (increase(fq_cases_routed_by_category_total[1d]))",
                     "{{category}}"),), unit="percentunit"),
            Panel("Routing corrections per day by department (top 10)",
                  "Corrections by the department that held the case when it was corrected: "
                  "a department that returns many cases may be routed to wrongly by a rule.",
                  (q("topk(10, sum by (department) "
                     "(increase(fq_routing_corrections_total[1d])))", "{{department}}"),)),
        )),
        Row("Outcomes", (
            Panel("Lifecycle transitions per day by status",
                  "Transitions in the trailing 24 hours by the status reached: accepted, "
                  "in mediation, resolved, failed, escalated, referred, closed, visited, "
                  "rated, archived.",
                  (q("sum by (to_status) (increase(fq_cases_transitions_total[1d]))",
                     "{{to_status}}"),)),
            Panel("Resolution rate 化解率 and closure rate 办结率 (trailing 7 d)",
                  "Resolved ÷ closed and closed ÷ received over the trailing 7 days. "
                  "Satisfaction and on-time rates are not exported as metrics: see "
                  "mediation's GET /v1/stats.",
                  (q(f"{RESOLVED_7D} / {CLOSED_7D}", "化解率 resolution"),
                   q(f"{CLOSED_7D} / {RECEIVED_7D}", "办结率 closure")),
                  unit="percentunit", max=1),
            Panel("Personal data erased per day",
                  "Cases whose personal data a service erased in the trailing 24 hours: "
                  "retention after archive (FQ_PERSONAL_DATA_RETENTION_DAYS) or a lawful "
                  "request. Mediation erases first; intake, router and notify follow, so "
                  "their lines match mediation's (docs/privacy.md).",
                  (q("sum by (service, reason) (increase(fq_personal_data_erased_total[1d]))",
                     "{{service}} {{reason}}"),)),
        )),
    ),
)

DASHBOARDS = {"operations.json": OPERATIONS, "governance.json": GOVERNANCE}


# ------------------------------------------------------------------ rendering


def _thresholds(panel: Panel) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": panel.base_colour, "value": None}]
    steps += [{"color": colour, "value": value} for value, colour in panel.thresholds]
    return {"mode": "absolute", "steps": steps}


def _field_config(panel: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit, "thresholds": _thresholds(panel)}
    if panel.kind == "timeseries":
        defaults["min"] = 0
        defaults["color"] = {"mode": "palette-classic"}
        defaults["custom"] = {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 20 if panel.stack else 10,
            "showPoints": "never", "spanNulls": False,
            "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"},
            "thresholdsStyle": {"mode": "line" if panel.thresholds else "off"},
        }
    else:
        defaults["color"] = {"mode": "thresholds"}
    if panel.max is not None:
        defaults["max"] = panel.max
    overrides = [
        {"matcher": {"id": "byName", "options": name},
         "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": colour}}]}
        for name, colour in panel.colours.items()
    ]
    return {"defaults": defaults, "overrides": overrides}


def _options(panel: Panel) -> dict[str, Any]:
    if panel.kind == "stat":
        return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "background", "graphMode": "none", "textMode": "auto",
                "justifyMode": "auto", "orientation": "auto"}
    return {"legend": {"displayMode": "table", "placement": "bottom", "showLegend": True,
                       "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"}}


def _target(query: Query, ref_id: str, instant: bool) -> dict[str, Any]:
    target: dict[str, Any] = {"datasource": DATASOURCE, "refId": ref_id, "expr": query.expr,
                              "legendFormat": query.legend or "__auto"}
    target.update({"instant": True, "range": False} if instant
                  else {"instant": False, "range": True})
    return target


def render(dashboard: Dashboard) -> dict[str, Any]:
    """The Grafana JSON model of `dashboard`, laid out left to right, rows top to bottom."""
    panels: list[dict[str, Any]] = []
    y = 0
    for row in dashboard.rows:
        panels.append({"id": len(panels) + 1, "type": "row", "title": row.title,
                       "collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                       "panels": []})
        y += 1
        x, line_height = 0, 0
        for panel in row.panels:
            height = panel.height or (5 if panel.kind == "stat" else 8)
            if x + panel.width > 24:
                x, y, line_height = 0, y + line_height, 0
            panels.append({
                "id": len(panels) + 1, "type": panel.kind, "title": panel.title,
                "description": panel.description, "datasource": DATASOURCE,
                "gridPos": {"h": height, "w": panel.width, "x": x, "y": y},
                "fieldConfig": _field_config(panel), "options": _options(panel),
                "targets": [_target(query, chr(ord("A") + i), panel.kind == "stat")
                            for i, query in enumerate(panel.queries)],
            })
            x += panel.width
            line_height = max(line_height, height)
        y += line_height
    return {
        "uid": dashboard.uid, "title": dashboard.title, "description": dashboard.description,
        "tags": list(dashboard.tags), "timezone": "browser", "schemaVersion": 39,
        "version": 1, "editable": False, "graphTooltip": 1, "refresh": dashboard.refresh,
        "time": {"from": dashboard.time_from, "to": "now"},
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": [{"type": "dashboards", "tags": ["fengqiao"], "asDropdown": False,
                   "title": "fengqiao dashboards", "includeVars": False,
                   "keepTime": True}],
        "templating": {"list": []},
        "panels": panels,
    }


def rendered() -> dict[str, str]:
    """File name -> the exact text this script writes."""
    return {name: json.dumps(render(dashboard), ensure_ascii=False, indent=2) + "\n"
            for name, dashboard in DASHBOARDS.items()}


def main(argv: list[str]) -> int:
    stale = []
    for name, text in rendered().items():
        path = DASHBOARD_DIR / name
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(name)
        if "--check" not in argv:
            path.write_text(text, encoding="utf-8")
    if "--check" in argv and stale:
        print(f"out of date: {', '.join(stale)}; run {Path(__file__).name}", file=sys.stderr)
        return 1
    for name in stale:
        print(f"wrote {DASHBOARD_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
