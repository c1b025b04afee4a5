"""Every topic, the event it carries and who produces and consumes it."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from contracts.api_notify import DeliveryDeadEvent
from contracts.channels import (
    CourtReferral,
    GridReport,
    HotlineWorkOrder,
    PetitionReferral,
    PoliceReferral,
    WalkInVisit,
)
from contracts.envelope import CloudEvent
from contracts.events import (
    CaseLifecycleEvent,
    CasePersonalDataErasedEvent,
    CaseReportedEvent,
    CaseRoutedEvent,
    CaseSupervisionEvent,
    Correction,
)

CASE_REPORTED = "case.reported.v1"
CASE_ROUTED = "case.routed.v1"
# On every case.routed.v1 record fengqiao publishes: the event's correction kind ("return",
# "reassign", "dispatch"), or "none" for a router's own decision. Consumers can tell the kind
# of a routed event from it without parsing the event (the router keeps only dispatchers'
# decisions); a record without it (older records, other producers) is parsed as before.
CORRECTION_KIND_HEADER = "fq-correction-kind"

CASE_LIFECYCLE = "case.lifecycle.v1"
CASE_SUPERVISION = "case.supervision.v1"
CASE_PERSONAL_DATA_ERASED = "case.personal_data_erased.v1"
DLQ_SUFFIX = ".dlq"
NOTIFY_DELIVERIES_DLQ = "notify.deliveries.v1.dlq"


def correction_kind_header(correction: Correction | None) -> dict[str, str]:
    """The headers of a routed event fengqiao publishes (for kit.outbox.outbox_row)."""
    return {CORRECTION_KIND_HEADER: correction.kind.value if correction else "none"}


def dlq(topic: str) -> str:
    return topic + DLQ_SUFFIX


def intake_topic(channel: str) -> str:
    """Raw topic for a hotline or other system that publishes its native payloads to Kafka."""
    return f"intake.{channel}.v1"


@dataclass(frozen=True)
class Topic:
    name: str
    message: type[BaseModel]
    description: str
    producers: tuple[str, ...]
    consumers: tuple[str, ...]

    @property
    def is_cloudevent(self) -> bool:
        return issubclass(self.message, CloudEvent)


TOPICS: tuple[Topic, ...] = (
    Topic(CASE_REPORTED, CaseReportedEvent, "A report accepted by intake, in canonical form.",
          ("intake",), ("router", "mediation")),
    Topic(CASE_ROUTED, CaseRoutedEvent, "The router's decision for a case, or a "
          "dispatcher's (改派 / 人工分派, published by mediation with a `correction`).",
          ("router", "mediation"), ("mediation", "notify", "router (dispatchers' decisions)")),
    Topic(CASE_LIFECYCLE, CaseLifecycleEvent, "Every status transition of a case.",
          ("mediation",), ("router", "notify", "intake (Open311 request status)")),
    Topic(CASE_SUPERVISION, CaseSupervisionEvent, "Time-limit warnings and supervision (督办).",
          ("mediation",), ("notify",)),
    Topic(CASE_PERSONAL_DATA_ERASED, CasePersonalDataErasedEvent,
          "A case's personal data erased (retention after archive, or a lawful request): "
          "each service erases what it keeps of it.",
          ("mediation",), ("intake", "router", "notify")),
    Topic(intake_topic("hotline_12345"), HotlineWorkOrder,
          "Native 12345 work orders from hotline systems that publish to Kafka.",
          ("hotline systems",), ("intake",)),
    Topic(intake_topic("grid"), GridReport,
          "Native grid-worker event reports from grid management systems that publish to Kafka.",
          ("grid systems",), ("intake",)),
    Topic(intake_topic("police"), PoliceReferral,
          "Native police dispute referrals (警调对接) from police systems that publish to Kafka.",
          ("police systems",), ("intake",)),
    Topic(intake_topic("court"), CourtReferral,
          "Native court pre-litigation mediation referrals (诉调对接) published to Kafka.",
          ("court systems",), ("intake",)),
    Topic(intake_topic("petition"), PetitionReferral,
          "Native petition referrals (访调对接) from petition systems that publish to Kafka.",
          ("petition systems",), ("intake",)),
    Topic(intake_topic("walk_in"), WalkInVisit,
          "Reception-window visits (来访窗口) from window systems that publish to Kafka.",
          ("reception window systems",), ("intake",)),
    Topic(NOTIFY_DELIVERIES_DLQ, DeliveryDeadEvent,
          "Notifications (webhooks, hotline feedback, SMS) that failed their last attempt, "
          "with the reason; redeliver with POST /v1/deliveries/{delivery_id}/redeliver.",
          ("notify",), ("operators",)),
)


# Every consumer group of the platform and the topics it consumes. The lag exporter
# (kit.lag) reads these groups' committed offsets from the broker: Tansu cannot list a
# group's offsets without naming the partitions. tests/unit/test_liveness.py checks that
# the services consume exactly this.
CONSUMER_GROUPS: dict[str, tuple[str, ...]] = {
    "intake": tuple(t.name for t in TOPICS if t.name.startswith("intake.")),
    "intake-open311-status": (CASE_LIFECYCLE,),
    "router": (CASE_REPORTED, CASE_LIFECYCLE, CASE_ROUTED),
    "mediation": (CASE_REPORTED, CASE_ROUTED),
    "notify": (CASE_REPORTED, CASE_ROUTED, CASE_LIFECYCLE, CASE_SUPERVISION),
    # Each service erases its copy of a case's personal data in a group of its own.
    "intake-personal-data": (CASE_PERSONAL_DATA_ERASED,),
    "router-personal-data": (CASE_PERSONAL_DATA_ERASED,),
    "notify-personal-data": (CASE_PERSONAL_DATA_ERASED,),
}


def all_topic_names() -> list[str]:
    """Every topic the platform uses, dead-letter topics included."""
    names = [t.name for t in TOPICS]
    return names + [dlq(n) for n in names if not n.endswith(DLQ_SUFFIX)]
