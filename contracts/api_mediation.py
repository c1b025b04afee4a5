"""Mediation's REST models, shared with the platforms that work cases and read figures:
cases and their history, lifecycle transitions, and the statistics."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from contracts.channels import IdNumber, Phone
from contracts.enums import (
    CaseActivity,
    Category,
    Channel,
    Department,
    ExtensionDecision,
    HotlineUpdateKind,
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
from contracts.events import ChannelFieldValue, GeoPoint, TransitionData
from contracts.times import Moment, Reported


class StepInput(TransitionData):
    """The data of one lifecycle step. Which fields a step needs depends on its target:
    `resolved` needs agreement and agreement_amount (0 when no money is involved), `failed`
    a failure_reason, `referred` a referral, `visited` visit_notes, `rated` a satisfaction
    of 1–5; `accepted` and `in_mediation` may name the mediator; `returned` may name a
    suggested_department; `notes` fits any step.
    A field that does not belong to the step is refused rather than silently dropped."""

    model_config = ConfigDict(extra="forbid")

    mediator: str | None = Field(default=None, max_length=128)
    notes: str | None = Field(default=None, max_length=4000)
    agreement: str | None = Field(default=None, max_length=8000,
                                  description="The mediation agreement (调解协议)")
    # Finite and bounded: Infinity or 1e999 was once taken and stored as null (the agreed
    # sum lost) with a 200.
    agreement_amount: float | None = Field(default=None, ge=0, le=1e12, allow_inf_nan=False)
    failure_reason: str | None = Field(default=None, max_length=2000)
    referral: Referral | None = None
    visit_notes: str | None = Field(default=None, max_length=4000,
                                    description="Follow-up visit (回访) notes")

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        return _refuse_nul(value)


def _refuse_nul(value: object) -> object:
    # No database stores NUL in text (PostgreSQL refuses it): a clear 422 instead of a 500.
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class TransitionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to_status: Status
    actor: str = Field(min_length=1, max_length=128, description="Who does it (name or staff id)")
    reason: str | None = Field(default=None, max_length=2000)
    expected_version: int = Field(ge=1, description="The case's `version` as you last read it; "
                                  "if someone changed the case since, the answer is 409")
    data: StepInput = Field(default_factory=StepInput)

    @field_validator("actor", "reason")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        return _refuse_nul(value)


class HistoryEntry(BaseModel):
    version: int | None = Field(default=None, description="The case's version after this step")
    from_status: Status | None
    to_status: Status
    actor: str
    reason: str | None
    at: Reported
    data: dict[str, Any]
    activity: CaseActivity | None = Field(
        default=None, description="A progress note, an extension request or answer, or a 12345 "
        "hotline's update (补充, 催办, a changed deadline): not a change of status (to_status "
        "is from_status)")


class SupervisionEntry(BaseModel):
    routing_round: int
    sla_kind: SlaKind
    level: SupervisionLevel
    deadline: Reported
    tier: Tier
    emitted_at: Reported


class CaseSummary(BaseModel):
    case_id: str
    status: Status
    version: int
    channel: Channel
    external_id: str
    received_at: Reported
    category: Category | None
    risk: Risk | None
    tier: Tier | None
    lead_department: Department | None
    cooperating_departments: list[Department]
    jurisdiction_code: str | None = Field(
        description="The node at the case's tier that works it (a town-tier case: its town)")
    place_code: str | None = Field(
        default=None, description="Where the case is, as precisely as the router found it (a "
        "grid or village code, whatever tier works it)")
    position: Literal["reported", "place"] | None = Field(
        default=None, description="Where its point on the map comes from: the report's own "
        "coordinates, or the centre of its place; none: not on the map")
    routing_round: int
    mediator: str | None = None
    limits_from: Reported | None = Field(
        default=None, description="When the overall limit started (receipt, or escalation)")
    accept_from: Reported | None = Field(
        default=None, description="When the acceptance limit started again after a return or "
        "an assignment by hand (none: with the overall limit)")
    accept_by: Reported | None
    resolve_by: Reported | None
    accept_by_source: LimitSource | None = Field(
        default=None, description="Who set accept_by: policy, or hotline (the 12345 order's "
        "urgency, when earlier)")
    resolve_by_source: LimitSource | None = Field(
        default=None, description="Who set resolve_by: policy, hotline (the 12345 order's "
        "deadline or urgency, when earlier) or extension (an approved 延期)")
    extension_id: str | None = Field(default=None, description="The last extension request")
    extension_status: str | None = Field(
        default=None, description="pending, approved or denied")
    extension_requested_resolve_by: Reported | None = None
    returns: int = Field(default=0, description="Times a lead department returned it (退回)")
    reassignments: int = Field(default=0, description="Times it was assigned by hand")
    chasers: int = Field(default=0, description="Times the 12345 hotline chased it (催办次数)")
    accepted_at: Reported | None = None
    closed_at: Reported | None = None
    satisfaction: int | None = None
    referral: Referral | None = None
    review_flagged: bool = Field(
        default=False, description="Flagged for review (待研判): the router's readers disagreed "
        "or doubted; the decision's `review` says why. Cleared when a dispatcher assigns it")
    merged_into: str | None = Field(
        default=None, description="Merged (合并) into this main case: the report is closed as "
        "one of its matter, and fed back when the main case closes")
    owner: str | None = Field(default=None, description="The leader who owns the case (领导包案)")
    owner_proposed: bool = Field(
        default=False, description="A leader owner is proposed (a red case, or two or more "
        "prior related cases) and nobody owns it yet")
    overdue: bool = Field(description="A running time limit is past its deadline")
    supervision_level: SupervisionLevel | None = Field(
        default=None, description="The highest supervision (督办) level emitted in this routing "
        "round, of either limit: warning, level_1 (the deadline passed), level_2; none yet")


class PartyView(BaseModel):
    """A person in the case as the case view shows them: never a number in clear."""

    person: str = Field(description="reporter or parties.N: how intake's personal-data route "
                        "names this person", examples=["parties.0"])
    name: str | None
    role: PartyRole
    phone_masked: str | None = Field(description="138****8000; null also when withheld")
    id_number_masked: str | None = Field(description="null also when withheld")
    address: str | None = Field(description="null also when withheld")


class CaseReport(BaseModel):
    """The report as the people who work the case need it: who, where, what the channel
    said, its photos. What a key is not shown is named in `withheld` (docs/mediation.md,
    "Who sees what in a case")."""

    reporter: PartyView | None
    parties: list[PartyView]
    address: str | None = Field(description="The report's address (numbers masked)")
    location: GeoPoint | None = Field(description="Coordinates as reported")
    region_code: str | None
    grid_code: str | None
    occurred_at: Reported | None
    channel_category: str | None = Field(description="The channel's own classification")
    urgency: Urgency | None
    deadline: Reported | None = Field(description="The channel's own deadline")
    amount: float | None
    people_count: int | None
    injuries: bool | None
    photos: list[str] = Field(description="Links the source sent (grid photos); empty when "
                              "withheld")
    channel_fields: dict[str, ChannelFieldValue] = Field(
        description="The channel's own fields as it names them (court: cause, court_name, "
        "mediation_deadline; police: incident_no, station_name; ...); empty for cases "
        "reported before the platform kept them")
    withheld: list[str] = Field(
        description="What this key is not shown: photos, parties.phone_masked, "
        "parties.id_number_masked, parties.address")


class CaseView(CaseSummary):
    text: str | None
    decision: dict[str, Any] | None
    report: CaseReport = Field(description="Parties, place, photos and the channel's fields")
    personal_data_revealable: bool = Field(
        description="This key may ask intake for the numbers in clear (POST /v1/intake/cases/"
        "{case_id}/personal-data): scope personal_data:reveal, the lead department's (or not "
        "limited to departments), and the case's personal data not erased")
    personal_data_erased_at: Reported | None = None
    allowed_transitions: list[Status] = Field(
        description="Where staff may move the case now (POST .../transitions)")
    history: list[HistoryEntry]
    supervision: list[SupervisionEntry]


class CasePage(BaseModel):
    items: list[CaseSummary]
    next_cursor: str | None


class PointGeometry(BaseModel):
    type: Literal["Point"] = "Point"
    coordinates: list[float] = Field(min_length=2, max_length=2,
                                     description="[longitude, latitude], WGS 84 degrees")


class CaseFeature(BaseModel):
    """A case on the map: its point, and its summary (nothing more) as properties."""

    type: Literal["Feature"] = "Feature"
    id: str = Field(description="The case id")
    geometry: PointGeometry
    properties: CaseSummary


class CaseFeatureCollection(BaseModel):
    """`GET /v1/cases` as GeoJSON (RFC 7946): the located cases of the page, newest first;
    `next_cursor` (a foreign member) pages on as in JSON."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[CaseFeature]
    next_cursor: str | None


def case_geojson_schema() -> dict[str, Any]:
    """CaseFeatureCollection's schema for the OpenAPI document, its own parts inlined and
    CaseSummary referred to (the JSON answer already puts it among the components)."""
    schema = CaseFeatureCollection.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            name = str(node.get("$ref", "")).rsplit("/", 1)[-1]
            if name in defs and name != "CaseSummary":
                return inline(defs[name])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    return dict(inline(schema))


class AssignmentRequest(BaseModel):
    """A dispatcher's decision (改派 / 人工分派): who leads the case now, at which tier, and why."""

    model_config = ConfigDict(extra="forbid")

    lead_department: Department
    cooperating_departments: list[Department] = Field(default_factory=list, max_length=16)
    tier: Tier
    reason: str = Field(min_length=1, max_length=2000, description="Why (recorded and shown "
                        "to the departments)")
    actor: str | None = Field(default=None, min_length=1, max_length=128,
                              description="Who decides (name or staff id); default: the key")
    expected_version: int = Field(ge=1, description="The case's `version` as you last read "
                                  "it; if someone changed the case since, the answer is 409")

    @field_validator("actor", "reason")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        return _refuse_nul(value)

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class TransitionResult(BaseModel):
    case: CaseSummary
    transitions: list[HistoryEntry] = Field(
        description="The steps taken: one, or two when `referred` closes the case at once")


class StatsDimension(StrEnum):
    CHANNEL = "channel"
    TIER = "tier"
    DEPARTMENT = "department"
    CATEGORY = "category"
    JURISDICTION = "jurisdiction"
    ROUTED_DEPARTMENT = "routed_department"
    LEAD_RULE = "lead_rule"
    OWNER = "owner"  # the leader who owns the case (领导包案)
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


PERIODS = frozenset({StatsDimension.DAY, StatsDimension.WEEK, StatsDimension.MONTH})


class StatsRow(BaseModel):
    group: dict[str, str | None] = Field(
        description="The group's value per dimension asked for, e.g. {\"month\": \"2026-11\"}")
    received: int
    mediated: int
    resolved: int
    closed: int
    closed_resolved: int
    closed_on_time: int
    rated: int
    satisfaction_sum: int
    satisfied: int
    court_received: int
    court_mediated: int
    repeats: int
    returned: int
    reassigned: int
    reports: int = Field(default=0, description="Reports received, those merged into another "
                         "case (合并) included; `received` counts a merged matter once")
    merged: int = Field(default=0, description="Reports merged into the main case of their "
                        "matter")
    resolution_rate: float | None
    closure_rate: float | None
    on_time_rate: float | None
    satisfaction_mean: float | None
    satisfaction_share_4_5: float | None
    diversion_rate: float | None
    success_rate: float | None
    repeat_rate: float | None
    return_rate: float | None
    reassignment_rate: float | None


class StatsReport(BaseModel):
    group_by: list[StatsDimension]
    received_from: Reported | None
    received_to: Reported | None
    rows: list[StatsRow]
    total: StatsRow


class AuditAction(StrEnum):
    """What a key did with cases: read one, listed some, moved one along its lifecycle,
    or erased its personal data (the retention job, or a lawful request)."""

    READ = "read"
    LIST = "list"
    TRANSITION = "transition"
    ASSIGN = "assign"
    ERASE = "erase"
    SUPERVISE = "supervise"  # a supervision notice issued (督办 / 催办)
    ANSWER = "answer"  # a supervision notice answered (反馈)
    OWN = "own"  # a leader took or gave up ownership of a case (领导包案)
    MERGE = "merge"  # reports merged into the main case of their matter (合并)
    UNMERGE = "unmerge"
    PERSONAL_DATA_EXPORT = "personal_export"
    PERSONAL_DATA_ERASE = "personal_erase"


class AuditEntry(BaseModel):
    id: int
    at: Reported
    key_id: str = Field(description="The API key that made the request")
    key_name: str
    action: AuditAction
    case_id: str | None = Field(description="The case read or moved; none for a list")
    detail: dict[str, Any] = Field(
        description="read: {}; list: the filters given and how many cases were answered; "
        "transition: from_status, to_status, the version reached and the actor named; "
        "assign: from_status, the previous and new lead department, tier, reason, version")


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: int | None = Field(description="Pass as `cursor` for the next (older) page")


class PersonQuery(BaseModel):
    """A person named by a phone or id number (in any form a channel accepts), never in a
    URL: request bodies are not logged."""

    model_config = ConfigDict(extra="forbid")

    phone: Phone | None = None
    id_number: IdNumber | None = None

    @model_validator(mode="after")
    def _one_at_least(self) -> PersonQuery:
        if not self.phone and not self.id_number:
            raise ValueError("give phone or id_number (or both)")
        return self


class ErasureRequest(PersonQuery):
    legal_basis: str = Field(min_length=1, max_length=500, description="The lawful request "
                             "the erasure answers (its reference, who asked, why): audited")

    @field_validator("legal_basis")
    @classmethod
    def _no_nul_basis(cls, value: object) -> object:
        return _refuse_nul(value)


class PersonalDataCase(BaseModel):
    """What mediation holds on the person in one case: the case's facts, the person as the
    case names them, and the text with everyone else's names and numbers taken out."""

    case_id: str
    channel: str
    external_id: str
    status: Status
    received_at: Reported
    category: str | None
    lead_department: str | None
    roles: list[dict[str, Any]] = Field(description="The person as the case names them "
                                        "(reporter or party): name, role, masked numbers")
    text: str | None
    history: list[HistoryEntry]
    personal_data_erased_at: Reported | None


class PersonalDataExport(BaseModel):
    cases: list[PersonalDataCase]


class PersonalDataErased(BaseModel):
    case_ids: list[str] = Field(description="The cases whose personal data was erased "
                                "(every service erases its copy shortly after)")


class ProgressNoteRequest(BaseModel):
    """A progress note (过程反馈): what the lead department has done so far. Recorded in the
    case's history and sent to the 12345 hotline's callback."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=1, max_length=4000, description="What was done (办理进展)")
    actor: str | None = Field(default=None, min_length=1, max_length=128,
                              description="Who writes it (name or staff id); default: the key")
    expected_version: int | None = Field(
        default=None, ge=1, description="The case's `version` as you last read it (optional): "
        "if given and the case changed since, the answer is 409")

    @field_validator("note", "actor")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        return _refuse_nul(value)


def _representable(value: datetime | None) -> datetime | None:
    # 9999-12-31T23:59:59-23:59 is a valid time with an offset and no valid time in UTC:
    # stored or compared, it overflowed (a 500). Refused as out of range instead.
    if value is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("out of range") from None
    return value


class ExtensionRequest(BaseModel):
    """An extension request (延期申请) by the lead department of a 12345 case: a new
    resolution date and why. The hotline answers it (POST /v1/hotline/orders/{order_no}/
    extension-decision)."""

    model_config = ConfigDict(extra="forbid")

    requested_resolve_by: Moment = Field(
        description="The new resolution date asked for, with its offset; after the current "
        "resolve_by")
    reason: str = Field(min_length=1, max_length=2000, description="Why (延期理由)")
    actor: str | None = Field(default=None, min_length=1, max_length=128,
                              description="Who asks (name or staff id); default: the key")
    expected_version: int | None = Field(
        default=None, ge=1, description="The case's `version` as you last read it (optional)")

    @field_validator("reason", "actor")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        return _refuse_nul(value)

    @field_validator("requested_resolve_by")
    @classmethod
    def _in_range(cls, value: datetime) -> datetime | None:
        return _representable(value)


class ExtensionAnswer(BaseModel):
    """The hotline's answer to an extension request (延期审核). Approved: the case's
    resolution limit moves to `resolve_by` (default: the date asked for)."""

    model_config = ConfigDict(extra="forbid")

    extension_id: str = Field(min_length=1, max_length=64,
                              description="The request's id, from the extension_requested "
                              "callback")
    decision: ExtensionDecision
    reason: str | None = Field(default=None, max_length=2000, description="The hotline's "
                               "remarks (审核意见)")
    resolve_by: Moment | None = Field(
        default=None, description="Approved: the new resolution date, if not the one asked for")

    @field_validator("extension_id", "reason")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        return _refuse_nul(value)

    @field_validator("resolve_by")
    @classmethod
    def _in_range(cls, value: datetime | None) -> datetime | None:
        return _representable(value)


K = HotlineUpdateKind
# Which fields each kind of update takes, besides update_id and kind: required, optional.
UPDATE_FIELDS: dict[HotlineUpdateKind, tuple[frozenset[str], frozenset[str]]] = {
    K.SUPPLEMENT: (frozenset({"text"}), frozenset()),
    K.CHASER: (frozenset(), frozenset({"text"})),
    K.DEADLINE_CHANGE: (frozenset(), frozenset({"deadline", "urgency", "text"})),
    K.FOLLOW_UP: (frozenset({"satisfaction", "text"}), frozenset()),
}


class HotlineUpdate(BaseModel):
    """An update from the 12345 hotline about one of its work orders after posting it,
    by `kind`: `supplement` (补充: the caller added information; `text`), `chaser` (催办:
    the caller chased; `text` optional), `deadline_change` (a new 办结时限 `deadline` and/or
    紧急程度 `urgency`; `text` optional, why), `follow_up` (回访结果: the hotline's own
    return visit; `satisfaction` and `text`). A field another kind takes is refused (422
    naming it). `update_id` makes it idempotent: sent again, the same answer."""

    model_config = ConfigDict(extra="forbid")

    update_id: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00]*$",
                           description="The hotline's own id of this update (更新编号): the "
                           "same update sent again (same id, same content) answers as the "
                           "first time and changes nothing")
    kind: HotlineUpdateKind = Field(description="supplement (补充), chaser (催办), "
                                    "deadline_change (时限变更), follow_up (回访结果)")
    text: str | None = Field(
        default=None, min_length=1, max_length=4000, validate_default=True,
        description="supplement: what the caller added (补充内容), required; chaser: what the "
        "caller said (催办内容), optional; deadline_change: why (变更原因), optional; "
        "follow_up: the return visit (回访情况), required. Phone and id numbers in it are "
        "masked before it is stored (138****8000)")
    deadline: Moment | None = Field(
        default=None, validate_default=True,
        description="deadline_change: the order's new deadline (办结时限), with its offset; "
        "after the case's receipt and in the future. Becomes the case's resolution limit")
    urgency: Urgency | None = Field(
        default=None, validate_default=True,
        description="deadline_change: the order's new urgency (紧急程度): its limits from the "
        "order's receipt (the router's `sla.hotline_urgency`: urgent 2 h / 5 days, "
        "very_urgent 1 h / 2 days); with `deadline` too, the earlier")
    satisfaction: int | None = Field(
        default=None, ge=1, le=5, validate_default=True,
        description="follow_up: 满意度 on the centre's own scale (the `rated` step): 5 非常满意, "
        "4 满意, 3 基本满意, 2 不满意, 1 非常不满意; 4 and 5 count as satisfied in the figures")

    @field_validator("text", "deadline", "urgency", "satisfaction")
    @classmethod
    def _belongs_to_kind(cls, value: object, info: ValidationInfo) -> object:
        value = _refuse_nul(value)
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be blank")
        kind = info.data.get("kind")
        if kind is None:
            return value  # the kind itself is at fault, and said so
        required, optional = UPDATE_FIELDS[kind]
        name = info.field_name or ""
        if value is None and name in required:
            raise ValueError(f"required for a {kind.value} update")
        if value is not None and name not in required | optional:
            raise ValueError(f"not part of a {kind.value} update")
        # (A deadline refused is not in info.data: its own error says enough.)
        if (kind is K.DEADLINE_CHANGE and name == "urgency" and value is None
                and "deadline" in info.data and info.data["deadline"] is None):
            raise ValueError("a deadline_change gives deadline, urgency or both")
        return value

    @field_validator("deadline")
    @classmethod
    def _in_range(cls, value: datetime | None) -> datetime | None:
        return _representable(value)


class HotlineNoticeRef(BaseModel):
    """The supervision notice a chaser opened or raised (催办 → 督办 → 挂牌督办)."""

    notice_id: str
    action: NoticeAction = Field(description="issued (no notice was open) or raised (one "
                                 "level up); at the highest level it stays: missed")
    level: NoticeLevel
    answer_by: Reported = Field(description="When the lead department must answer (反馈)")


class HotlineUpdateResult(TransitionResult):
    """What an update did: the case now, the steps it took (one; a follow-up on a closed case
    two: visited, rated), and for a chaser the supervision notice. Sent again, the same."""

    update_id: str
    kind: HotlineUpdateKind
    notice: HotlineNoticeRef | None = None
