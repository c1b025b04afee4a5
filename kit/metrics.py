"""Every Prometheus metric of the platform, defined once so names never drift between services.

Names follow Prometheus conventions: `fq_` prefix, base units, `_total` for counters.
Each service process runs one uvicorn worker, so the default registry is the whole truth
of the process (no multiprocess mode); scale out with more processes, each scraped.
Dashboards and alerts use these names: docs/operations.md.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# The *_created series double the output and no dashboard uses them.
disable_created_metrics()

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

HTTP_REQUESTS = Counter("fq_http_requests", "HTTP requests served",
                        ["service", "route", "method", "status"])
HTTP_DURATION = Histogram("fq_http_request_duration_seconds", "HTTP request latency",
                          ["service", "route", "method"], buckets=LATENCY_BUCKETS)

CASES_RECEIVED = Counter("fq_cases_received", "Cases accepted by intake", ["channel"])
CASES_ROUTED = Counter("fq_cases_routed", "Routing decisions by tier, lead department and risk",
                       ["tier", "department", "risk"])
# By category, for the return rate of each category (first routings, and returns routed again).
FIRST_ROUTINGS = Counter("fq_cases_routed_by_category", "First routing decisions by category",
                         ["category"])
ROUTING_RETURNS = Counter("fq_routing_returns", "Returns by the lead department (退回) the "
                          "router routed again, by the case's category", ["category"])
ROUTING_LATENCY = Histogram("fq_routing_latency_seconds", "From receipt to routing decision",
                            buckets=LATENCY_BUCKETS)

MESSAGES_CONSUMED = Counter("fq_messages_consumed", "Kafka messages handled",
                            ["group", "topic"])
CONSUMER_GROUP_COMMITTED = Gauge("fq_consumer_group_committed_messages",
                                 "The group's committed offsets summed over the topic's "
                                 "partitions: it stands still when the group commits nothing",
                                 ["group", "topic"])
CONSUMER_LAG = Gauge("fq_consumer_lag_messages", "High watermark minus position",
                     ["group", "topic", "partition"])
# Read from the broker by every service process (kit.lag), not by the consumer itself: a
# consumer that hangs or dies stops writing fq_consumer_lag_messages, not this.
CONSUMER_GROUP_LAG = Gauge("fq_consumer_group_lag_messages",
                           "Log-end offsets minus the group's committed offsets, from the broker",
                           ["group", "topic"])
DLQ_MESSAGES = Counter("fq_dlq_messages", "Messages sent to a dead-letter topic", ["topic"])

OUTBOX_BACKLOG = Gauge("fq_outbox_backlog_rows", "Outbox rows not yet published", ["service"])
OUTBOX_OLDEST_AGE = Gauge("fq_outbox_oldest_age_seconds", "Age of the oldest unpublished row",
                          ["service"])
OUTBOX_PUBLISHED = Counter("fq_outbox_published", "Outbox rows published", ["service"])
OUTBOX_FAILED_ROWS = Gauge("fq_outbox_failed_rows", "Outbox rows the relay set aside because "
                           "they could not be published (see the row's set_aside_reason)",
                           ["service"])
OUTBOX_SET_ASIDE = Counter("fq_outbox_set_aside", "Outbox rows set aside by the relay",
                           ["service"])

DELIVERIES = Counter("fq_deliveries", "Delivery attempts (webhook, hotline feedback, SMS) "
                     "by receiver (subscription id, or hotline_feedback / sms) and result: succeeded, "
                     "retry or dead", ["receiver", "result"])

CASES_OPEN = Gauge("fq_cases_open", "Cases not yet closed", ["tier", "department"])
CASES_OVERDUE = Gauge("fq_cases_overdue", "Open cases past a time limit", ["tier", "department"])
RED_UNACCEPTED_OVERDUE = Gauge("fq_red_cases_unaccepted_overdue",
                               "Red-risk cases not accepted within their 2-hour limit")
TRANSITIONS = Counter("fq_cases_transitions", "Lifecycle transitions", ["to_status"])
SUPERVISION_EVENTS = Counter("fq_supervision_events", "Supervision events emitted", ["level"])
# Supervision notices issued by hand (督办 / 催办): open ones by level and the department
# pressed (the leader's recount), answers by whether they came in time, levels raised.
SUPERVISION_NOTICES_OPEN = Gauge("fq_supervision_notices_open", "Supervision notices issued by "
                                 "hand and not yet answered", ["level", "department"])
SUPERVISION_NOTICE_ANSWERS = Counter("fq_supervision_notice_answers", "Answers (反馈) to "
                                     "supervision notices, on time or late", ["on_time"])
SUPERVISION_NOTICES_RAISED = Counter("fq_supervision_notices_raised", "Supervision notices "
                                     "raised a level after a missed answer, by the new level",
                                     ["level"])
ROUTING_CORRECTIONS = Counter(
    "fq_routing_corrections", "Routings corrected by staff: returns (退回), reassignments "
    "(改派) and dispatches by hand (人工分派), by the department that held the case",
    ["kind", "department"])

DELIVERY_ATTEMPT_DURATION = Histogram("fq_delivery_attempt_duration_seconds",
                                      "One delivery attempt (webhook, hotline feedback, SMS)",
                                      ["target"], buckets=LATENCY_BUCKETS)

LAST_PROGRESS = Gauge("fq_last_progress_timestamp_seconds",
                      "When each activity (consumer loop, outbox relay, leader job) last made "
                      "progress, idle or busy (kit.liveness)", ["service", "activity"])
PERSONAL_DATA_ERASED = Counter(
    "fq_personal_data_erased", "Cases whose personal data a service erased, by why "
    "(retention after archive, or a lawful request)", ["service", "reason"])
