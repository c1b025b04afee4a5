"""Every topic, the event it carries and who produces and consumes it."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from contracts.channels import HotlineWorkOrder
from contracts.envelope import CloudEvent
from contracts.events import (
    CaseLifecycleEvent,
    CaseReportedEvent,
    CaseRoutedEvent,
    CaseSupervisionEvent,
)

CASE_REPORTED = "case.reported.v1"
CASE_ROUTED = "case.routed.v1"
CASE_LIFECYCLE = "case.lifecycle.v1"
CASE_SUPERVISION = "case.supervision.v1"
DLQ_SUFFIX = ".dlq"


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
    Topic(CASE_ROUTED, CaseRoutedEvent, "The router's decision for a case.",
          ("router",), ("mediation", "notify")),
    Topic(CASE_LIFECYCLE, CaseLifecycleEvent, "Every status transition of a case.",
          ("mediation",), ("router", "notify")),
    Topic(CASE_SUPERVISION, CaseSupervisionEvent, "Time-limit warnings and supervision (督办).",
          ("mediation",), ("notify",)),
    Topic(intake_topic("hotline_12345"), HotlineWorkOrder,
          "Native 12345 work orders from hotline systems that publish to Kafka.",
          ("hotline systems",), ("intake",)),
)


def all_topic_names() -> list[str]:
    """Every topic the platform uses, dead-letter topics included."""
    names = [t.name for t in TOPICS]
    return names + [dlq(n) for n in names]
