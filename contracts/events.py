"""The four case events that cross service borders, and their data models."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.enums import (
    CaseActivity,
    Category,
    Channel,
    CorrectionKind,
    Department,
    ExtensionDecision,
    LimitSource,
    NoticeAction,
    NoticeLevel,
    PartyRole,
    Referral,
    Risk,
    SlaKind,
    Status,
    SupervisionLevel,
    Tier,
    Urgency,
)
from contracts.envelope import CloudEvent
from contracts.times import Moment

CaseId = Annotated[str, Field(min_length=1, max_length=64, description="fengqiao case id")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class GeoPoint(_Model):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


# A channel field's value: text (numbers masked), a number, a flag, or a time as ISO 8601.
ChannelFieldValue = str | int | float | bool


class PartyRef(_Model):
    """A person in a case as events carry them: numbers masked, plus keyed hashes for matching."""

    name: str | None = None
    role: PartyRole = PartyRole.OTHER
    phone_masked: str | None = Field(default=None, examples=["138****8000"])
    phone_hash: str | None = Field(default=None, description="HMAC-SHA256 of the normalised phone")
    id_number_masked: str | None = Field(default=None, examples=["110105********0018"])
    id_number_hash: str | None = Field(default=None, description="HMAC-SHA256 of the id number")
    address: str | None = None


class CaseReported(_Model):
    """A report from any channel, in canonical form."""

    case_id: CaseId
    channel: Channel
    external_id: str = Field(description="The channel's own id (order_no, report_id, ...)")
    received_at: Moment
    text: str = Field(description="The report's main text (诉求内容 / description / summary)")
    channel_category: str | None = Field(
        default=None, description="The channel's own classification: hotline category, grid "
        "event_type, police dispute_type or court cause (案由)")
    urgency: Urgency | None = None
    address: str | None = None
    region_code: str | None = None
    grid_code: str | None = None
    station_code: str | None = None
    court_code: str | None = None
    location: GeoPoint | None = None
    occurred_at: Moment | None = None
    amount: float | None = Field(default=None, ge=0, description="Money at stake, CNY")
    people_count: int | None = Field(default=None, ge=0)
    injuries: bool | None = None
    reporter: PartyRef | None = None
    parties: list[PartyRef] = Field(default_factory=list)
    deadline: Moment | None = Field(
        default=None, description="The channel's own deadline (hotline deadline, court "
        "mediation_deadline)")
    callback_url: str | None = Field(default=None,
                                     description="Where results are fed back (办结反馈)")
    integration_key_id: str | None = Field(
        default=None, max_length=32, description="The id (not the secret) of the API key that "
        "posted the report: the integration whose registered callback endpoint gets a 12345 "
        "order's callbacks when the order has no callback_url. None for reports from the "
        "broker, Open311, and events from before this field")
    photos: list[str] = Field(
        default_factory=list, max_length=20,
        description="Links to the photos the source sent (a grid worker's), as it sent them")
    channel_fields: dict[str, ChannelFieldValue] = Field(
        default_factory=dict, description="The channel's own fields, named as the channel "
        "names them (court: case_no, court_name, cause, claim_amount, referred_at, "
        "mediation_deadline; police: incident_no, station_code, station_name, ...; "
        "docs/intake.md): for the people who work the case. Phone and id numbers masked, as "
        "everywhere outside intake. Events from before this field carry none")


class JurisdictionRef(_Model):
    code: str
    name: str
    level: str = Field(description="county, town, village or grid")


class Place(JurisdictionRef):
    """Where the case is: the most precise node the router found (a grid, a village, a town
    or the county), whatever tier works the case, how it found it, and the node's point on
    the map (a village's middle, a grid's centre) when the jurisdiction data places it."""

    source: str = Field(description="grid_code, region_code, station_code, court_code, "
                        "coordinates, address, parties or text")
    centre: GeoPoint | None = Field(default=None, description="The node's point, not the "
                                    "report's: never a person's location")


class Explanation(_Model):
    zh: str
    en: str


class Sla(_Model):
    accept_by: Moment
    resolve_by: Moment
    accept_by_source: LimitSource = Field(
        default=LimitSource.POLICY, description="Who set accept_by: the policy, or the 12345 "
        "order's urgency when it is earlier")
    resolve_by_source: LimitSource = Field(
        default=LimitSource.POLICY, description="Who set resolve_by: the policy, or the 12345 "
        "order's deadline or urgency when it is earlier")


class Review(_Model):
    """Doubt as a state (待研判): the router's two readers disagree, or neither is sure.

    A flagged decision stands meanwhile, at the higher of the risks the readers gave, and
    the case waits in the dispatcher's queue for a person to confirm or correct it."""

    flagged: bool = False
    reasons: list[str] = Field(default_factory=list, description="why, one line each in Chinese")
    codes: list[str] = Field(default_factory=list,
                             description="why, as codes: review.risk_disagreement, ...")


class RoutingDecision(_Model):
    """What the router decided, and why."""

    category: Category
    category_confidence: float = Field(ge=0, le=1)
    category_terms: list[str] = Field(default_factory=list)
    risk: Risk
    risk_signals: list[str] = Field(default_factory=list)
    tier: Tier
    lead_department: Department
    cooperating_departments: list[Department] = Field(default_factory=list)
    jurisdiction: JurisdictionRef | None = Field(
        default=None, description="The node at the decision's tier (a village-tier case "
        "names its village, a town-tier case its town)")
    place: Place | None = Field(default=None, description="Where the case is, as precisely "
                                "as the router found it (additive: absent before 2026-12)")
    sla: Sla
    rules_fired: list[str] = Field(default_factory=list)
    explanation: Explanation
    rules_version: str
    review: Review = Field(default_factory=Review,
                           description="flagged for a person when the readers disagree or doubt")


class Correction(_Model):
    """Why a case is routed again other than after an escalation: its lead department
    returned it (the router chose anew), or a dispatcher decided by hand."""

    kind: CorrectionKind
    by: str = Field(description="Who returned or assigned the case (the step's actor)")
    reason: str
    previous_lead_department: Department | None = Field(
        default=None, description="The department that held the case before (it is told "
        "the case was withdrawn from it)")
    returned_by: list[Department] = Field(
        default_factory=list, description="Every department that has returned the case")


class CaseRouted(_Model):
    case_id: CaseId
    channel: Channel
    external_id: str
    received_at: Moment
    routed_at: Moment
    routing_round: int = Field(default=1, ge=1, description="1 at first routing, +1 per "
                               "escalation, return or assignment by hand")
    decision: RoutingDecision
    correction: Correction | None = Field(
        default=None, description="Set when the case was returned or assigned by a person: "
        "the acceptance limit starts again, the overall limit keeps running")
    awaiting_dispatch: bool = Field(
        default=False, description="The router found no department left, or the case has "
        "been returned twice: a dispatcher decides (status awaiting_dispatch); `decision` is "
        "the last one, kept for reference")


class TransitionData(_Model):
    """The data a lifecycle step carries; which fields apply depends on the target status."""

    mediator: str | None = None
    notes: str | None = None
    agreement: str | None = None
    agreement_amount: float | None = Field(default=None, ge=0)
    failure_reason: str | None = None
    referral: Referral | None = None
    visit_notes: str | None = None
    satisfaction: int | None = Field(default=None, ge=1, le=5)
    suggested_department: Department | None = Field(
        default=None, description="On a return (退回): where the department thinks the case "
        "belongs; the router tries it first")
    extension_id: str | None = Field(
        default=None, max_length=64, description="An extension request (延期申请) and its "
        "answer: the request's id")
    requested_resolve_by: Moment | None = Field(
        default=None, description="An extension request: the new resolution date asked for")
    extension_decision: ExtensionDecision | None = Field(
        default=None, description="The hotline's answer to an extension request")
    resolve_by: Moment | None = Field(
        default=None, description="An approved extension or the hotline's changed deadline: "
        "the case's resolution limit now")
    accept_by: Moment | None = Field(
        default=None, description="The hotline's changed urgency: the case's acceptance "
        "limit now (while it runs)")
    urgency: Urgency | None = Field(
        default=None, description="The hotline's changed urgency (紧急程度)")
    update_id: str | None = Field(
        default=None, max_length=128, description="A 12345 hotline's update after the order: "
        "the hotline's own id of it")
    chasers: int | None = Field(
        default=None, ge=0, description="A chaser (催办): how often the case has been chased "
        "now")
    notice_id: str | None = Field(
        default=None, max_length=36, description="A chaser: the supervision notice it opened "
        "or raised")


class CaseLifecycle(_Model):
    case_id: CaseId
    version: int = Field(ge=1, description="The case's version after this transition")
    from_status: Status | None
    to_status: Status
    actor: str
    reason: str | None = None
    at: Moment
    channel: Channel
    external_id: str
    tier: Tier | None = None
    lead_department: Department | None = None
    routing_round: int | None = Field(
        default=None, ge=0, description="The case's routing round at this step (a return is "
        "routed again in the round after it)")
    data: TransitionData = Field(default_factory=TransitionData)
    activity: CaseActivity | None = Field(
        default=None, description="Set when the event records an activity on the case rather "
        "than a change of status (to_status is then from_status): a progress note (过程反馈, "
        "in data.notes), an extension request (延期申请) or the hotline's answer to it, or "
        "the hotline's update after the order: hotline_supplement (补充, in data.notes), "
        "hotline_chaser (催办), hotline_deadline_change (data.resolve_by, data.urgency)")
    owner: str | None = Field(default=None, description="The leader who owns the case "
                              "(领导包案), if any")


class SupervisionNoticeRef(_Model):
    """A supervision notice issued by hand (督办 / 催办), as supervision events carry it."""

    notice_id: str
    action: NoticeAction
    level: NoticeLevel
    asked: str = Field(description="What the leader asks of the lead department")
    answer_by: Moment
    issued_by: str = Field(description="The leader who issued it")
    answer: str | None = Field(default=None, description="The department's answer (反馈)")
    answered_by: str | None = None
    answered_on_time: bool | None = None


class CaseSupervision(_Model):
    """Supervision of a case: a time limit reaching a level (the scheduler), or a notice
    issued, answered or raised by hand (`notice` set; `level` then maps the notice's level
    for consumers that know only these: reminder → warning, urge → level_1, supervise and
    listed → level_2; `sla_kind` is resolution and `deadline` the answer's)."""

    case_id: CaseId
    level: SupervisionLevel
    sla_kind: SlaKind
    deadline: Moment
    deadline_source: LimitSource = Field(
        default=LimitSource.POLICY, description="Who set the deadline: the policy, the 12345 "
        "order, or an approved extension")
    tier: Tier = Field(description="The tier the supervision goes to (level_2: the tier above)")
    lead_department: Department | None = None
    at: Moment
    notice: SupervisionNoticeRef | None = Field(
        default=None, description="Set for a notice issued by hand (督办 / 催办)")
    owner: str | None = Field(default=None, description="The leader who owns the case "
                              "(领导包案), if any")


class CasePersonalDataErased(_Model):
    """A case's personal data was erased where mediation keeps it: every service that keeps
    some of its own erases it too. Carries no personal data itself."""

    case_id: CaseId
    reason: Literal["retention", "request"] = Field(
        description="retention: archived longer than FQ_PERSONAL_DATA_RETENTION_DAYS; "
        "request: erased ahead of time on a lawful request")
    at: Moment


class CaseReportedEvent(CloudEvent[CaseReported]):
    event_type: ClassVar[str] = "cn.fengqiao.case.reported.v1"


class CaseRoutedEvent(CloudEvent[CaseRouted]):
    event_type: ClassVar[str] = "cn.fengqiao.case.routed.v1"


class CaseLifecycleEvent(CloudEvent[CaseLifecycle]):
    event_type: ClassVar[str] = "cn.fengqiao.case.lifecycle.v1"


class CaseSupervisionEvent(CloudEvent[CaseSupervision]):
    event_type: ClassVar[str] = "cn.fengqiao.case.supervision.v1"


class CasePersonalDataErasedEvent(CloudEvent[CasePersonalDataErased]):
    event_type: ClassVar[str] = "cn.fengqiao.case.personal_data_erased.v1"


def case_id_of(event: Any) -> str:
    """The case a case event (any of the four above) is about: each one's data names it."""
    return str(event.data.case_id)
