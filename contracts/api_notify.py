"""Notify's published contracts: webhook subscriptions, the delivery log, the hotline result
feedback (办结反馈) it posts, the dead-delivery record on `notify.deliveries.v1.dlq`, and the
contact-directory answer it expects from intake."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    UrlConstraints,
)

from contracts.enums import (
    CaseActivity,
    Category,
    Channel,
    Department,
    ExtensionDecision,
    NoticeAction,
    Risk,
    Status,
    SupervisionLevel,
    Tier,
)
from contracts.envelope import CloudEvent
from contracts.times import Moment, Reported

# ---------------------------------------------------------------------------------------------
# Event kinds a subscription can ask for

KIND_ROUTED = "routed"
KIND_LIFECYCLE = "lifecycle"
KIND_SUPERVISION = "supervision"
# A corrected routing (a return routed again, or an assignment by hand): the new departments
# are told the case was assigned to them, the department that lost it that it was withdrawn.
# `routed` covers both.
KIND_ASSIGNED = "routed.assigned"
KIND_WITHDRAWN_FROM = "routed.withdrawn"

EVENT_KINDS: tuple[str, ...] = (
    KIND_ROUTED, KIND_ASSIGNED, KIND_WITHDRAWN_FROM,
    KIND_LIFECYCLE, *(f"{KIND_LIFECYCLE}.{s.value}" for s in Status),
    # Lifecycle events that record an activity (a progress note, an extension request or
    # answer) rather than a change of status.
    *(f"{KIND_LIFECYCLE}.{a.value}" for a in CaseActivity),
    KIND_SUPERVISION, *(f"{KIND_SUPERVISION}.{level.value}" for level in SupervisionLevel),
    # Supervision notices issued by hand (督办 / 催办): issued, answered, raised after a
    # missed answer (the leader's), missed at the highest level.
    *(f"{KIND_SUPERVISION}.notice.{action.value}" for action in NoticeAction),
)


def notice_kind(action: NoticeAction) -> str:
    """The kind of a supervision notice's event: `supervision.notice.raised`."""
    return f"{KIND_SUPERVISION}.notice.{action.value}"


def lifecycle_kind(status: Status) -> str:
    """The kind of a lifecycle event: `lifecycle.closed`."""
    return f"{KIND_LIFECYCLE}.{status.value}"


def supervision_kind(level: SupervisionLevel) -> str:
    """The kind of a supervision event: `supervision.level_2`."""
    return f"{KIND_SUPERVISION}.{level.value}"


def _known_kind(kind: str) -> str:
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown kind '{kind}': use routed, routed.assigned, "
                         "routed.withdrawn, lifecycle, lifecycle.<status>, supervision, "
                         "supervision.<level> or supervision.notice.<action>")
    return kind


EventKind = Annotated[str, AfterValidator(_known_kind)]
JurisdictionPrefix = Annotated[str, Field(pattern=r"^\d{1,15}$",
                                          description="Administrative division code or prefix")]

# ---------------------------------------------------------------------------------------------
# Subscriptions

class SubscriptionIn(BaseModel):
    """A webhook subscription. Every filter list empty means 'all'; filters combine with AND,
    values inside one filter with OR."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00]*$")
    # Bounded before anything parses it: a 70,000-character URL once broke the parser (500).
    url: Annotated[AnyHttpUrl, UrlConstraints(max_length=2048)] = Field(
        description="Where events are POSTed (http or https), at most 2048 characters")
    kinds: list[EventKind] = Field(
        default=[KIND_ROUTED], min_length=1, max_length=len(EVENT_KINDS),
        description="routed (also covers routed.assigned and routed.withdrawn: a corrected "
        "routing told to the new and the former lead department); lifecycle (every status) "
        "or lifecycle.<status>; supervision (every level) or supervision.<level>")
    departments: list[Department] = Field(
        default=[], max_length=len(Department),
        description="Lead or cooperating department; empty: every department")
    tiers: list[Tier] = Field(default=[], max_length=len(Tier))
    risks: list[Risk] = Field(default=[], max_length=len(Risk))
    categories: list[Category] = Field(default=[], max_length=len(Category))
    jurisdictions: list[JurisdictionPrefix] = Field(
        default=[], max_length=100,
        description="Division codes; a case matches when its jurisdiction code starts with one")
    channels: list[Channel] = Field(
        default=[], max_length=len(Channel),
        description="The cases' intake channels; empty: every channel. A key limited to "
        "channels must name them (within its own)")
    authorised_personal_data: bool = Field(
        default=False, description="Also receive the reporting citizen's phone number "
        "(`contactphone`); only an admin key may set this")


class SubscriptionOut(BaseModel):
    id: str
    name: str
    url: str
    kinds: list[str]
    departments: list[Department]
    tiers: list[Tier]
    risks: list[Risk]
    categories: list[Category]
    jurisdictions: list[str]
    channels: list[Channel]
    authorised_personal_data: bool
    created_at: Reported
    previous_secret_expires_at: Reported | None = Field(
        default=None, description="Until then deliveries are also signed with the secret "
        "before the last rotation")


class SubscriptionCreated(SubscriptionOut):
    secret: str = Field(description="Signing secret (Standard Webhooks, whsec_...); shown once")


class SecretRotated(BaseModel):
    id: str
    secret: str = Field(description="The new signing secret; shown once")
    previous_secret_expires_at: Reported = Field(
        description="The old secret keeps signing (a second signature) until then")


# ---------------------------------------------------------------------------------------------
# Deliveries

DeliveryStatus = Literal["pending", "succeeded", "dead"]
DeliveryTarget = Literal["webhook", "hotline_feedback", "sms"]


class AttemptOut(BaseModel):
    attempt: int = Field(description="1 for the first attempt; restarts at 1 after a redelivery")
    at: Reported
    status_code: int | None = Field(description="The receiver's HTTP status, if it answered")
    error: str | None = Field(description="Why the attempt failed; null when it succeeded")
    duration_seconds: float


class DeliveryOut(BaseModel):
    id: int
    target: DeliveryTarget
    subscription_id: str | None = Field(description="Set for webhook deliveries")
    url: str | None = Field(
        default=None, description="Where it goes: the subscription's URL, the work order's "
        "callback_url, or the integration's registered endpoint as it was at the last "
        "attempt (before the first attempt, null for an endpoint's callbacks); without its "
        "query string, which may hold a receiver's token. Null for SMS")
    integration_key_id: str | None = Field(
        default=None, description="A hotline callback sent to an integration's registered "
        "endpoint (its order had no callback_url): the key id of that integration")
    event_id: str
    case_id: str
    kind: str
    status: DeliveryStatus
    attempts: int = Field(description="Attempts since the delivery was (re)queued")
    next_attempt_at: Reported | None = Field(description="When a pending delivery is tried next")
    last_status_code: int | None
    last_error: str | None
    created_at: Reported
    delivered_at: Reported | None


class DeliveryDetail(DeliveryOut):
    attempt_log: list[AttemptOut] = Field(description="Every attempt ever made, oldest first")


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: int | None = Field(description="Pass as `cursor` for the next (older) page")


# ---------------------------------------------------------------------------------------------
# Hotline result feedback (办结反馈): what notify POSTs to a 12345 work order's callback_url

class HotlineStep(StrEnum):
    """The steps of a 12345 work order the hotline's callback hears of, in its terms."""

    SIGNED_FOR = "signed_for"  # 签收: the lead department accepted the case
    PROGRESS = "progress"  # 过程反馈: a progress note
    EXTENSION_REQUESTED = "extension_requested"  # 延期申请
    EXTENSION_APPROVED = "extension_approved"  # 延期审核：同意 (the limit moved)
    EXTENSION_DENIED = "extension_denied"  # 延期审核：不同意
    RETURNED = "returned"  # 退单: sent back to the hotline, closed here
    CLOSED = "closed"  # 办结
    VISITED = "visited"  # 回访
    RATED = "rated"  # 回访结果: the citizen's satisfaction


class HotlineExtension(BaseModel):
    """An extension request (延期申请) and, once answered, the answer."""

    model_config = ConfigDict(frozen=True)

    extension_id: str = Field(description="Answer with it: POST /v1/hotline/orders/"
                              "{order_no}/extension-decision on mediation")
    requested_resolve_by: Moment | None = Field(description="The date asked for")
    reason: str | None = Field(description="Why (延期理由), or the hotline's remarks")
    decision: ExtensionDecision | None = Field(default=None,
                                               description="null while pending")


class HotlineFeedback(BaseModel):
    """One step of a 12345 work order, in the hotline's terms: 签收, 过程反馈, 延期申请 and
    its answer, 退单, 办结, 回访 and its result."""

    model_config = ConfigDict(frozen=True)

    order_no: str = Field(description="The hotline's work order number (工单编号)")
    case_id: str = Field(description="fengqiao case id")
    step: HotlineStep = Field(default=HotlineStep.CLOSED, description="Which step this is")
    sequence: int | None = Field(
        default=None, description="The case's version at this step: steps of one order "
        "arrive in this order; a repeat has the same webhook-id and sequence")
    at: Moment | None = Field(default=None, description="When the step was taken")
    note: str | None = Field(default=None, description="过程反馈: the progress note")
    extension: HotlineExtension | None = Field(
        default=None, description="延期申请 and its answer")
    resolve_by: Moment | None = Field(
        default=None, description="The case's resolution limit after an approved extension")
    status: Status = Field(description="The case's status: accepted (签收), closed (办结), "
                           "visited (回访), rated (评价), or where it stands for a progress note "
                           "or an extension")
    result: str = Field(description="The reply to show the caller (答复内容 / 办理结果): the "
                        "outcome (resolved with the agreement, failed and referred, withdrawn) "
                        "or the step's own text")
    handling_department: Department | None = Field(description="Lead department (承办单位)")
    closed_at: Moment | None = Field(description="When the case was closed (办结时间)")
    satisfaction: int | None = Field(default=None, ge=1, le=5,
                                     description="The citizen's rating 1–5 (满意度), once rated")
    visited_at: Moment | None = Field(default=None, description="Follow-up visit (回访)")
    handler: str | None = Field(
        default=None, description="Who in the handling department took the step (承办人), "
        "where the centre discloses it (FQ_HOTLINE_DISCLOSE_HANDLER)")
    handler_contact: str | None = Field(
        default=None, description="The handling department's public contact (联系电话) as the "
        "centre published it (FQ_HOTLINE_DEPARTMENT_CONTACTS); never a citizen's number")
    returned: bool = Field(default=False, description="Sent back to the hotline (退单): "
                           "outside the centre's remit; `return_reason` says why")
    return_reason: str | None = Field(default=None, description="Why it was sent back (退单原因)")


# ---------------------------------------------------------------------------------------------
# A hotline integration's registered callback endpoint: where notify sends the callbacks of
# the integration's work orders that carry no callback_url

class HotlineEndpointIn(BaseModel):
    """The calling key's callback endpoint: created, or replaced (URL and steps; the secret
    stays)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: Annotated[AnyHttpUrl, UrlConstraints(max_length=2048)] = Field(
        description="Where the callbacks of this key's work orders without callback_url are "
        "POSTed (http or https), at most 2048 characters. An order's own callback_url still "
        "wins")
    kinds: list[HotlineStep] = Field(
        default=list(HotlineStep), min_length=1, max_length=len(HotlineStep),
        description="The steps wanted: signed_for (签收), progress (过程反馈), "
        "extension_requested (延期申请), extension_approved, extension_denied (延期审核), "
        "returned (退单), closed (办结), visited (回访), rated (回访结果); default all")


class HotlineEndpointOut(BaseModel):
    key_id: str = Field(description="The integration: the API key that posts the orders")
    url: str
    kinds: list[HotlineStep]
    created_at: Reported
    updated_at: Reported
    previous_secret_expires_at: Reported | None = Field(
        default=None, description="Until then callbacks are also signed with the secret "
        "before the last rotation")


class HotlineEndpointCreated(HotlineEndpointOut):
    secret: str | None = Field(
        default=None, description="Signing secret (Standard Webhooks, whsec_...): shown once, "
        "when the endpoint is created; null when an existing endpoint was replaced (its "
        "secret stays: rotate it with POST /v1/hotline/endpoint/rotate-secret)")


# ---------------------------------------------------------------------------------------------
# Dead deliveries on notify.deliveries.v1.dlq

class DeliveryDead(BaseModel):
    """A delivery that failed its last attempt. Redeliver it with
    POST /v1/deliveries/{delivery_id}/redeliver."""

    model_config = ConfigDict(frozen=True)

    delivery_id: int
    target: DeliveryTarget
    subscription_id: str | None
    event_id: str = Field(description="The case event the delivery carried")
    case_id: str
    kind: str
    attempts: int
    last_status_code: int | None
    reason: str = Field(description="Why the last attempt failed")
    dead_at: Moment
    payload: dict[str, Any] = Field(description="The JSON that was being delivered (masked)")


class DeliveryDeadEvent(CloudEvent[DeliveryDead]):
    event_type: ClassVar[str] = "cn.fengqiao.notify.delivery.dead.v1"


# ---------------------------------------------------------------------------------------------
# The contact directory notify expects intake to serve (personal data, narrow scope)

class CaseContact(BaseModel):
    """Answer of intake's `GET /v1/intake/cases/{case_id}/contact` (scope personal_data:read):
    the reporting citizen's phone in clear. Never published in an event."""

    case_id: str
    phone: str | None = Field(description="Normalised phone (mobile or landline); null if none")
