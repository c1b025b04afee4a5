"""Mediation's handlers: reported and routed events create and move cases, staff move them
through the lifecycle (transition_case). Every transition is one conditional update of the
case, a history row and a case.lifecycle.v1 event through the outbox, in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from contracts.api_mediation import AssignmentRequest, TransitionRequest
from contracts.enums import (
    CaseActivity,
    Channel,
    CorrectionKind,
    Department,
    LimitSource,
    Status,
    SupervisionLevel,
)
from contracts.events import (
    CaseLifecycle,
    CaseLifecycleEvent,
    CaseReportedEvent,
    CaseRouted,
    CaseRoutedEvent,
    Correction,
    Explanation,
    RoutingDecision,
    Sla,
    TransitionData,
    case_id_of,
)
from contracts.topics import CASE_LIFECYCLE, CASE_ROUTED, correction_kind_header
from kit.consumer import Delivery
from kit.metrics import ROUTING_CORRECTIONS, TRANSITIONS
from kit.outbox import add_to_outbox, outbox_row
from kit.settings import Settings
from services.mediation import store
from services.mediation.domain.figures import prior_related_count
from services.mediation.domain.lifecycle import (
    CLOSES_AUTOMATICALLY,
    DataProblem,
    Milestones,
    StaleVersion,
    StepDataInvalid,
    check_assignment,
    check_reason,
    check_step_data,
    check_transition,
    step_changes,
)
from services.mediation.domain.masking import masked
from services.mediation.domain.ownership import owner_proposed
from services.mediation.domain.places import reported_position, routed_position
from services.mediation.domain.time_limits import CaseClocks, LimitOverrides
from services.mediation.related import insert_keys, key_rows
from services.mediation.store import HISTORY, Case, CaseRow, NewCase, insert_cases, kit_tables

SYSTEM_ACTOR = "urn:fengqiao:mediation"


class StaleCase(Exception):
    """Someone changed the case between reading it and updating it."""


def clocks_of(case: Case | NewCase | CaseRow, **changes: Any) -> CaseClocks:
    """The case's time limits, as they are or would be with `changes` applied."""
    value = {name: changes.get(name, getattr(case, name)) for name in (
        "status", "limits_from", "accept_from", "accept_by", "resolve_by",
        "acceptance_supervised", "resolution_supervised")}
    return CaseClocks(
        status=Status(value["status"]) if value["status"] else Status.REPORTED,
        start=value["limits_from"] or case.received_at,
        accept_by=value["accept_by"], resolve_by=value["resolve_by"],
        acceptance_supervised=_level(value["acceptance_supervised"]),
        resolution_supervised=_level(value["resolution_supervised"]),
        acceptance_start=value["accept_from"])


def _level(value: str | None) -> SupervisionLevel | None:
    return SupervisionLevel(value) if value else None


@dataclass
class Pending:
    """New cases, history rows and lifecycle events not yet written: a run of events writes
    all of theirs at the end, a statement each (plain rows: building SQLModel objects for
    rows that are only inserted was a sixth of mediation's CPU for history, a seventh for
    new cases)."""

    cases: list[NewCase] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    # The keys that tie reports to the others of their matter (related.py).
    keys: list[dict[str, Any]] = field(default_factory=list)

    async def write(self, session: AsyncSession) -> None:
        await insert_cases(session, self.cases)
        if self.history:
            await session.execute(insert(HISTORY), self.history)
        await add_to_outbox(session, kit_tables.outbox, self.outbox)
        await insert_keys(session, self.keys)
        self.cases, self.history, self.outbox, self.keys = [], [], [], []


@cache
def _transitions(to_status: Status) -> Any:
    # The counter's child per status, looked up once (labels() on every step showed up).
    return TRANSITIONS.labels(to_status=to_status.value)


async def record_transition(session: AsyncSession, case: Case | NewCase, to_status: Status, *,
                            actor: str, at: datetime, reason: str | None = None,
                            data: TransitionData | None = None,
                            changes: dict[str, Any] | None = None,
                            pending: Pending | None = None,
                            locked: bool = False,
                            activity: CaseActivity | None = None) -> dict[str, Any]:
    """Move `case` to `to_status` with `changes`: bump its version (conditionally: raises
    StaleCase if someone changed it since it was read; `locked`: nobody can have, since the
    caller holds its row lock or created it; a NewCase is inserted by `pending`), write
    history, publish the event (or, given `pending`, leave both there for the caller to
    write with others). Returns the history
    row. With `activity` the step records it (a progress note, an extension) and
    `to_status` is the case's own status."""
    from_status = Status(case.status) if case.version > 0 and case.status else None
    values: dict[str, Any] = {**(changes or {}), "status": to_status.value,
                              "version": case.version + 1, "updated_at": datetime.now(UTC)}
    values["supervision_due_at"] = clocks_of(case, **values).next_due_at()
    if locked:
        # Flushed with the session's other changes, no conditional UPDATE needed.
        _change(session, case, values)
    elif not isinstance(case, Case) or not await store.update_case(session, case, values):
        raise StaleCase(case.case_id)  # (a NewCase is always the run's: locked)
    data = data or TransitionData()
    entry = {"case_id": case.case_id, "version": case.version,
             "from_status": from_status.value if from_status else None,
             "to_status": to_status.value, "actor": actor, "reason": reason, "at": at,
             "data": data.model_dump(mode="json", exclude_none=True),
             "activity": activity.value if activity else None}
    event = CaseLifecycleEvent.wrap(CaseLifecycle(
        case_id=case.case_id, version=case.version, from_status=from_status,
        to_status=to_status, actor=actor, reason=reason, at=at, channel=case.channel,
        external_id=case.external_id, tier=case.tier, lead_department=case.lead_department,
        routing_round=case.routing_round, data=data, activity=activity, owner=case.owner),
        source="mediation", subject=case.case_id)
    written_here = pending is None
    pending = pending or Pending()
    pending.history.append(entry)
    pending.outbox.append(outbox_row(CASE_LIFECYCLE, event))
    if written_here:
        await pending.write(session)
    _transitions(to_status).inc()
    return entry


async def transition_case(session: AsyncSession, case: Case, request: TransitionRequest,
                          at: datetime) -> list[dict[str, Any]]:
    """A staff step on a case, checked against the state machine and the case's version.
    Raises StepDataInvalid, StaleVersion or IllegalTransition (TransitionRefused)."""
    request = masked(request)
    target = request.to_status
    data = TransitionData.model_validate(request.data.model_dump(exclude_unset=True))
    problems = check_step_data(target, data) + check_reason(target, request.reason)
    if target is Status.RETURNED_TO_SOURCE and case.channel != Channel.HOTLINE_12345:
        problems.append(DataProblem("to_status", "only a 12345 case goes back to the hotline"))
    if problems:
        raise StepDataInvalid(target, problems)
    if case.version != request.expected_version:
        raise StaleVersion(request.expected_version, case.version)
    check_transition(Status(case.status), target)
    reached = Milestones(case.mediated_at, case.resolved_at, case.closed_at)
    changes = step_changes(target, at, data, reached)
    if target is Status.RETURNED:
        changes["returns"] = case.returns + 1
    try:
        steps = [await record_transition(
            session, case, target, actor=request.actor, at=at, reason=request.reason,
            data=data, changes=changes)]
        follow_up = CLOSES_AUTOMATICALLY.get(target)
        if follow_up is not None:
            why = (f"{target.value} onward ({data.referral}): the referral closes the case"
                   if target is Status.REFERRED else
                   "returned to the 12345 hotline (退单): the case closes here")
            steps.append(await record_transition(
                session, case, follow_up, actor=SYSTEM_ACTOR, at=at, reason=why,
                changes=step_changes(follow_up, at, TransitionData(), reached)))
    except StaleCase:
        current = await store.current_version(session, case.case_id)
        raise StaleVersion(request.expected_version, current or 0) from None
    if target is Status.RETURNED:
        # Counted against the department that held the case: it still leads it until the
        # router decides.
        ROUTING_CORRECTIONS.labels(CorrectionKind.RETURN.value,
                                   case.lead_department or "none").inc()
    return steps


def _change(session: AsyncSession, case: Case | NewCase, values: dict[str, Any]) -> None:
    """Apply `values` to a case the caller holds locked (or created: a NewCase is
    inserted with its run's, as it is then)."""
    case.sqlmodel_update(values)
    if isinstance(case, Case):
        session.add(case)


class _Run:
    """The cases one run of events is about, read at once, and the rows it writes."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.cases: dict[str, Case | NewCase] = {}
        self.pending = Pending()

    async def load(self, case_ids: set[str]) -> None:
        # Locked, in one order (no deadlock between replicas), until the batch commits: the
        # changes are then made in memory and flushed together, not one conditional UPDATE
        # each; a staff step on one of them waits, then finds the new version. (Also flushes
        # what earlier runs of the batch left pending, so these are current.)
        found = await self.session.execute(
            select(Case).where(col(Case.case_id).in_(sorted(case_ids)))
            .order_by(col(Case.case_id)).with_for_update())
        self.cases = {case.case_id: case for case in found.scalars()}

    def new_case(self, case_id: str, channel: str, external_id: str,
                 received_at: datetime) -> NewCase:
        # version 0 and no status: the first record_transition makes it version 1.
        case = NewCase(case_id=case_id, channel=channel, external_id=external_id, status="",
                       version=0, received_at=received_at, updated_at=datetime.now(UTC))
        self.cases[case_id] = case
        self.pending.cases.append(case)
        return case


def limit_overrides(settings: Settings) -> LimitOverrides:
    """The limit lengths the settings impose instead of the decisions' (drills, tests)."""
    def seconds(value: float | None) -> timedelta | None:
        return timedelta(seconds=value) if value is not None else None
    return LimitOverrides(seconds(settings.acceptance_limit_seconds),
                          seconds(settings.resolution_limit_seconds))


class CaseEvents:
    """Handlers of the reported and routed events. Limit overrides (settings) replace the
    routing decision's limits for drills and tests."""

    def __init__(self, settings: Settings) -> None:
        self.overrides = limit_overrides(settings)
        # Exported from zero, so a dashboard shows "no corrections" rather than no data.
        for kind in CorrectionKind:
            for department in Department:
                ROUTING_CORRECTIONS.labels(kind.value, department.value)

    async def handle_batch(self, session: AsyncSession, batch: list[Delivery]) -> None:
        """A run of reported or routed events: their cases read in one query, the new cases,
        history rows and lifecycle events written together at the end (one event at a time,
        each a handful of round trips, mediation could not keep up with the router)."""
        run = _Run(session)
        await run.load({case_id_of(d.message) for d in batch})
        with session.no_autoflush:
            for delivery in batch:
                event = delivery.message
                if isinstance(event, CaseReportedEvent):
                    await self._on_reported(run, event)
                elif isinstance(event, CaseRoutedEvent):
                    await self._on_routed(run, event)
        await run.pending.write(session)

    async def _on_reported(self, run: _Run, event: CaseReportedEvent) -> None:
        report = event.data
        case = run.cases.get(report.case_id)
        fields: dict[str, Any] = {"text": report.text,
                                  "report": report.model_dump(mode="json", exclude_none=True),
                                  **reported_position(report)}
        run.pending.keys += key_rows(report.case_id, fields["report"])
        if case is None:
            case = run.new_case(report.case_id, report.channel.value, report.external_id,
                                report.received_at)
            await record_transition(run.session, case, Status.REPORTED, actor=event.source,
                                    at=report.received_at, changes=fields, pending=run.pending,
                                    locked=True)
        else:
            # The routed event overtook it (different topics have no common order).
            _change(run.session, case, fields)

    async def _on_routed(self, run: _Run, event: CaseRoutedEvent) -> None:
        routed = event.data
        session = run.session
        case = run.cases.get(routed.case_id)
        if case is None:
            # The decision overtook the report (different topics have no common order); the
            # case was reported all the same, so its history starts there.
            case = run.new_case(routed.case_id, routed.channel.value, routed.external_id,
                                routed.received_at)
            await record_transition(session, case, Status.REPORTED, actor=SYSTEM_ACTOR,
                                    at=routed.received_at,
                                    reason="the routing decision arrived before the report",
                                    pending=run.pending, locked=True)
        if routed.routing_round <= case.routing_round:
            return  # an older decision than the one we hold (or our own assignment)
        changes = routing_changes(case, routed, self.overrides)
        if case.status in ROUTABLE:
            target = Status.AWAITING_DISPATCH if routed.awaiting_dispatch else Status.ROUTED
            await record_transition(session, case, target, actor=event.source,
                                    at=routed.routed_at, reason=routed.decision.explanation.en,
                                    changes=changes, pending=run.pending, locked=True)
        else:
            # Withdrawn while the router worked: keep the decision, no clock runs.
            changes["supervision_due_at"] = clocks_of(case, **changes).next_due_at()
            _change(session, case, changes)  # locked by the run: flushed with the others


# The statuses a routing decision moves a case from: before its first one, after an
# escalation, routed again, after a return, or waiting in the dispatch queue.
ROUTABLE = frozenset({Status.REPORTED, Status.ESCALATED, Status.ROUTED, Status.RETURNED,
                      Status.AWAITING_DISPATCH})


def routing_changes(case: Case | NewCase, routed: CaseRouted, overrides: LimitOverrides
                    ) -> dict[str, Any]:
    """The case fields a routing decision (the router's or a dispatcher's) sets."""
    decision = routed.decision
    correction = routed.correction
    changes: dict[str, Any] = {
        "category": decision.category.value, "risk": decision.risk.value,
        "tier": decision.tier.value, "lead_department": decision.lead_department.value,
        "cooperating_departments": [d.value for d in decision.cooperating_departments],
        "jurisdiction_code": decision.jurisdiction.code if decision.jurisdiction else None,
        "decision": decision.model_dump(mode="json"), "routing_round": routed.routing_round,
        "prior_related": prior_related_count(decision),
        # 领导包案 is proposed for red cases and repeat matters, until a leader owns it.
        "owner_proposed": case.owner is None and owner_proposed(decision),
        # A dispatcher's decision is a person's: nothing left to review.
        "review_flagged": decision.review.flagged and (
            correction is None or correction.kind is CorrectionKind.RETURN),
        **routed_position(case.position, decision),
    }
    if correction is None or case.resolve_by is None:
        # A first routing counts from receipt; a case routed again from its escalation.
        start = routed.received_at if routed.routing_round == 1 else (
            case.escalated_at or routed.routed_at)
        accept_by, resolve_by = overrides.apply(start, decision.sla.accept_by,
                                                decision.sla.resolve_by, decision.sla)
        resolve_source = decision.sla.resolve_by_source.value
        if (case.resolve_by_source == LimitSource.EXTENSION.value and case.resolve_by
                and resolve_source == LimitSource.HOTLINE.value
                and case.resolve_by > resolve_by):
            # The hotline's limit, moved by an extension it approved, stays moved when the
            # case is routed again (the router knows only the order's own deadline).
            resolve_by, resolve_source = case.resolve_by, LimitSource.EXTENSION.value
        changes.update(limits_from=start, accept_from=None, accept_by=accept_by,
                       resolve_by=resolve_by,
                       accept_by_source=decision.sla.accept_by_source.value,
                       resolve_by_source=resolve_source,
                       # A new round has new limits, supervised afresh.
                       acceptance_supervised=None, resolution_supervised=None)
    else:
        # Returned or assigned by hand: the acceptance limit starts again for the new
        # department; the overall limit keeps running (the citizen's clock does not stop).
        accept_by, _ = overrides.apply(routed.routed_at, decision.sla.accept_by,
                                       decision.sla.resolve_by)
        changes.update(accept_from=routed.routed_at, accept_by=accept_by,
                       accept_by_source=LimitSource.POLICY.value, acceptance_supervised=None)
    if routed.awaiting_dispatch:
        # Nobody leads it until a dispatcher decides; the last decision stays for reference.
        changes.update(lead_department=None, cooperating_departments=[])
    if routed.routing_round == 1:
        changes["routed_lead_department"] = decision.lead_department.value
        changes["routed_lead_rule"] = next(
            (rule for rule in decision.rules_fired if rule.startswith("lead.")), None)
    return changes


DEFAULT_ACCEPTANCE = timedelta(days=1)


def assignment_decision(case: Case, request: AssignmentRequest, actor: str,
                        at: datetime) -> CaseRouted:
    """A dispatcher's decision as a routed event's data: the case's category and risk, the
    departments and tier chosen, the acceptance limit as long as the last one, from now, and
    the overall limit unchanged."""
    kind = (CorrectionKind.DISPATCH if case.status == Status.AWAITING_DISPATCH
            else CorrectionKind.REASSIGN)
    previous = RoutingDecision.model_validate(case.decision)
    accept_start = case.accept_from or case.limits_from
    length = (case.accept_by - accept_start if case.accept_by and accept_start
              else DEFAULT_ACCEPTANCE)
    cooperating = [d for d in dict.fromkeys(request.cooperating_departments)
                   if d != request.lead_department]
    verb_zh = "人工分派" if kind is CorrectionKind.DISPATCH else "改派"
    decision = previous.model_copy(update={
        "tier": request.tier, "lead_department": request.lead_department,
        "cooperating_departments": cooperating,
        "rules_fired": [f"{kind.value} by {actor}: {request.reason}"],
        "explanation": Explanation(
            zh=f"{verb_zh}（{actor}）：{request.reason}；牵头{request.lead_department.value}",
            en=f"{kind.value} by {actor}: {request.reason}; lead "
               f"{request.lead_department.value} at {request.tier.value} tier"),
        "sla": Sla(accept_by=at + max(length, timedelta(0)),
                   resolve_by=case.resolve_by or previous.sla.resolve_by)})
    previous_lead = case.lead_department
    return CaseRouted(
        case_id=case.case_id, channel=Channel(case.channel), external_id=case.external_id,
        received_at=case.received_at, routed_at=at, routing_round=case.routing_round + 1,
        decision=decision, correction=Correction(
            kind=kind, by=actor, reason=request.reason,
            previous_lead_department=previous_lead if previous_lead else None))


async def assign_case(session: AsyncSession, case: Case, request: AssignmentRequest,
                      actor: str, at: datetime, overrides: LimitOverrides
                      ) -> tuple[dict[str, Any], CaseRouted]:
    """A dispatcher assigns the case (改派, or 人工分派 from the queue): the case is routed
    at once, and the decision is published as a routed event that every consumer applies
    (the router stores it beside its own decisions). Raises StaleVersion or NotAssignable."""
    if case.version != request.expected_version:
        raise StaleVersion(request.expected_version, case.version)
    check_assignment(Status(case.status))
    routed = assignment_decision(case, request, actor, at)
    changes = routing_changes(case, routed, overrides)
    changes["reassignments"] = case.reassignments + 1
    try:
        step = await record_transition(session, case, Status.ROUTED, actor=actor, at=at,
                                       reason=request.reason, changes=changes)
    except StaleCase:
        current = await store.current_version(session, case.case_id)
        raise StaleVersion(request.expected_version, current or 0) from None
    event = CaseRoutedEvent.wrap(routed, source="mediation", subject=case.case_id)
    assert routed.correction is not None
    await add_to_outbox(session, kit_tables.outbox, [outbox_row(
        CASE_ROUTED, event, headers=correction_kind_header(routed.correction))])
    previous = routed.correction.previous_lead_department
    ROUTING_CORRECTIONS.labels(routed.correction.kind.value,
                               previous.value if previous else "none").inc()
    return step, routed
