"""Mediation's event handlers: reported and routed events create and move cases; every
transition is written to the history and published on case.lifecycle.v1 via the outbox."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contracts.enums import Status
from contracts.events import (
    CaseLifecycle,
    CaseLifecycleEvent,
    CaseReportedEvent,
    CaseRoutedEvent,
    TransitionData,
)
from contracts.topics import CASE_LIFECYCLE
from kit.consumer import Delivery
from kit.metrics import TRANSITIONS
from kit.outbox import add_to_outbox, outbox_row
from services.mediation.store import Case, CaseHistory, kit_tables


async def record_transition(session: AsyncSession, case: Case, to_status: Status, *,
                            actor: str, at: datetime, reason: str | None = None,
                            data: TransitionData | None = None) -> None:
    """Move `case` to `to_status`: bump its version, write history, publish the lifecycle event."""
    from_status = Status(case.status) if case.version > 0 and case.status else None
    case.status = to_status.value
    case.version += 1
    case.updated_at = datetime.now(UTC)
    data = data or TransitionData()
    session.add(case)
    session.add(CaseHistory(case_id=case.case_id, from_status=from_status, to_status=to_status,
                            actor=actor, reason=reason, at=at,
                            data=data.model_dump(mode="json", exclude_none=True)))
    event = CaseLifecycleEvent.wrap(CaseLifecycle(
        case_id=case.case_id, version=case.version, from_status=from_status,
        to_status=to_status, actor=actor, reason=reason, at=at, channel=case.channel,
        external_id=case.external_id, tier=case.tier, lead_department=case.lead_department,
        data=data), source="mediation", subject=case.case_id)
    await add_to_outbox(session, kit_tables.outbox, [outbox_row(CASE_LIFECYCLE, event)])
    TRANSITIONS.labels(to_status=to_status.value).inc()


def _new_case(case_id: str, channel: str, external_id: str, received_at: datetime) -> Case:
    # version 0 and no status: the first record_transition makes it version 1.
    return Case(case_id=case_id, channel=channel, external_id=external_id, status="",
                version=0, received_at=received_at, updated_at=datetime.now(UTC))


async def on_reported(session: AsyncSession, delivery: Delivery) -> None:
    event = delivery.message
    assert isinstance(event, CaseReportedEvent)
    report = event.data
    case = await session.get(Case, report.case_id)
    fields: dict[str, Any] = {"text": report.text,
                              "report": report.model_dump(mode="json", exclude_none=True)}
    if case is None:
        case = _new_case(report.case_id, report.channel.value, report.external_id,
                         report.received_at)
        case.sqlmodel_update(fields)
        await record_transition(session, case, Status.REPORTED, actor=event.source,
                                at=report.received_at)
    else:
        # The routed event overtook it (different topics have no common order).
        case.sqlmodel_update(fields)
        session.add(case)


async def on_routed(session: AsyncSession, delivery: Delivery) -> None:
    event = delivery.message
    assert isinstance(event, CaseRoutedEvent)
    routed = event.data
    case = await session.get(Case, routed.case_id)
    if case is None:
        case = _new_case(routed.case_id, routed.channel.value, routed.external_id,
                         routed.received_at)
    if routed.routing_round <= case.routing_round:
        return  # an older decision than the one we hold
    decision = routed.decision
    case.sqlmodel_update({
        "category": decision.category.value, "risk": decision.risk.value,
        "tier": decision.tier.value, "lead_department": decision.lead_department.value,
        "cooperating_departments": [d.value for d in decision.cooperating_departments],
        "jurisdiction_code": decision.jurisdiction.code if decision.jurisdiction else None,
        "decision": decision.model_dump(mode="json"), "routing_round": routed.routing_round,
        "accept_by": decision.sla.accept_by, "resolve_by": decision.sla.resolve_by,
    })
    if case.status in ("", Status.REPORTED, Status.ESCALATED, Status.ROUTED):
        await record_transition(session, case, Status.ROUTED, actor=event.source,
                                at=routed.routed_at, reason=decision.explanation.en)
    else:
        session.add(case)
