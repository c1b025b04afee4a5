"""Pure parts of notify: who should hear about an event, how a webhook is signed, when to
try a failed delivery again, and what the hotline and the citizen are told. No I/O here."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import random
import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from contracts.api_notify import HotlineExtension, HotlineFeedback, HotlineStep
from contracts.enums import CaseActivity, Channel, Department, Referral, Status
from contracts.events import CaseLifecycle, CaseReported
from contracts.times import in_china
from contracts.vocabulary import DEPARTMENT_ZH
from kit.privacy import scrub

# ---------------------------------------------------------------------------------------------
# Signing: Standard Webhooks (standardwebhooks.com). Headers webhook-id, webhook-timestamp and
# webhook-signature = "v1,<base64 HMAC-SHA256 of id.timestamp.body>", keyed with the base64 part
# of a "whsec_..." secret, so receivers can use the Standard Webhooks libraries as they are.

SECRET_PREFIX = "whsec_"
# After a rotation the old secret keeps signing (a second signature) for this long, so a
# receiver can switch secrets without losing a delivery.
SECRET_OVERLAP = timedelta(hours=24)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def is_valid_secret(secret: str) -> bool:
    """A whsec_ secret whose key part is base64 of 16 to 64 bytes."""
    if not secret.startswith(SECRET_PREFIX):
        return False
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        return False
    return 16 <= len(key) <= 64


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_header(signing_secrets: Sequence[str], message_id: str, timestamp: int,
                     body: bytes) -> str:
    """One `v1,` signature per secret, space-separated, as Standard Webhooks allows."""
    return " ".join(sign(s, message_id, timestamp, body) for s in signing_secrets)


def verify(secret: str, message_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """What a receiver does: any v1 signature in the header must match."""
    expected = sign(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, sig) for sig in header.split())


def signing_secrets(secret: str, previous: str | None, previous_expires_at: datetime | None,
                    now: datetime) -> list[str]:
    """The current secret, and the one before the last rotation while its overlap lasts."""
    if previous and previous_expires_at and now < previous_expires_at:
        return [secret, previous]
    return [secret]


def webhook_headers(signing_secret: str | Sequence[str], message_id: str, timestamp: int,
                    body: bytes) -> dict[str, str]:
    keys = [signing_secret] if isinstance(signing_secret, str) else list(signing_secret)
    return {"content-type": "application/json", "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(keys, message_id, timestamp, body),
            "user-agent": "fengqiao-notify/1"}


def without_query(url: str) -> str:
    """A receiver's URL fit for the delivery log: no query string, fragment or user:password
    (where receivers put their tokens)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def message_id(event_id: str) -> str:
    """webhook-id: the same on every attempt and redelivery, so receivers can deduplicate."""
    return f"msg_{event_id}"


# ---------------------------------------------------------------------------------------------
# Retries

def next_attempt_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None
                       ) -> float:
    """Exponential backoff with jitter: after attempt n wait between half and all of
    base·2^(n-1), capped. Jitter spreads the retries of many deliveries that failed together."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(ceiling / 2, ceiling)


def retry_schedule(max_attempts: int, base: float, cap: float) -> list[tuple[float, float]]:
    """(earliest, latest) wait before attempts 2..max_attempts, for the docs and operators."""
    return [(min(cap, base * 2 ** (n - 1)) / 2, min(cap, base * 2 ** (n - 1)))
            for n in range(1, max_attempts)]


# ---------------------------------------------------------------------------------------------
# Who hears about what

@dataclass(frozen=True)
class Notice:
    """What one event says about its case, in the terms subscriptions filter on."""

    kind: str
    departments: frozenset[str]
    tier: str | None = None
    risk: str | None = None
    category: str | None = None
    jurisdiction: str | None = None
    channel: str | None = None


@dataclass(frozen=True)
class SubscriptionFilter:
    """A subscription's kinds and filters. An empty filter admits everything; a filter on a
    fact notify does not know for the case (e.g. its risk before it was routed) admits nothing."""

    kinds: frozenset[str]
    departments: frozenset[str]
    tiers: frozenset[str] = frozenset()
    risks: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    jurisdictions: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()

    def matches(self, kind: str, departments: Iterable[str], *, tier: str | None = None,
                risk: str | None = None, category: str | None = None,
                jurisdiction: str | None = None, channel: str | None = None) -> bool:
        if self.kinds and not self.wants(kind):
            return False
        if self.channels and channel not in self.channels:
            return False
        if self.departments and not self.departments & set(departments):
            return False
        if self.tiers and tier not in self.tiers:
            return False
        if self.risks and risk not in self.risks:
            return False
        if self.categories and category not in self.categories:
            return False
        return not self.jurisdictions or (
            jurisdiction is not None and any(jurisdiction.startswith(p)
                                             for p in self.jurisdictions))

    def admits(self, notice: Notice) -> bool:
        return self.matches(notice.kind, notice.departments, tier=notice.tier, risk=notice.risk,
                            category=notice.category, jurisdiction=notice.jurisdiction,
                            channel=notice.channel)

    def wants(self, kind: str) -> bool:
        """`lifecycle` covers every `lifecycle.<status>`, `supervision` every level."""
        return kind in self.kinds or kind.split(".", 1)[0] in self.kinds


# ---------------------------------------------------------------------------------------------
# What notify remembers about a case (from case.reported, case.routed and case.lifecycle)

@dataclass(frozen=True)
class CaseFacts:
    case_id: str
    channel: str | None = None
    external_id: str | None = None
    callback_url: str | None = None
    integration_key_id: str | None = None
    reporter_phone_masked: str | None = None
    category: str | None = None
    risk: str | None = None
    tier: str | None = None
    lead_department: str | None = None
    cooperating_departments: list[str] = field(default_factory=list)
    jurisdiction: str | None = None
    status: str | None = None
    outcome: str | None = None
    agreement: str | None = None
    agreement_amount: float | None = None
    failure_reason: str | None = None
    referral: str | None = None
    withdrawal_reason: str | None = None
    return_reason: str | None = None
    closed_at: datetime | None = None
    visited_at: datetime | None = None
    satisfaction: int | None = None

    @property
    def may_call_back(self) -> bool:
        """Whether a 12345 order's callbacks may have somewhere to go: its callback_url, or
        the endpoint its integration (the key that posted it) registered."""
        return (self.channel == Channel.HOTLINE_12345
                and bool(self.callback_url or self.integration_key_id))

    def notice(self, kind: str, *, departments: Iterable[str | None] = (),
               tier: str | None = None) -> Notice:
        """The notice of an event about this case; the event's own department and tier first."""
        known = {d for d in (*departments, self.lead_department) if d}
        return Notice(kind=kind, departments=frozenset(known | set(self.cooperating_departments)),
                      tier=tier or self.tier, risk=self.risk, category=self.category,
                      jurisdiction=self.jurisdiction, channel=self.channel)


# Citizens reach these channels themselves; grid, police and court reports come from an
# official, who is not the one to text.
CITIZEN_CHANNELS = frozenset({Channel.HOTLINE_12345, Channel.WALK_IN, Channel.OPEN311,
                              Channel.PETITION})
# The statuses the 12345 hotline wants fed back (办结, 回访, 评价).
FEEDBACK_STATUSES = frozenset({Status.CLOSED, Status.VISITED, Status.RATED})
OUTCOME_STATUSES = frozenset({Status.RESOLVED, Status.FAILED, Status.REFERRED,
                              Status.WITHDRAWN})


def reported_facts(report: CaseReported) -> dict[str, Any]:
    """The facts a report establishes."""
    return {"channel": report.channel.value, "external_id": report.external_id,
            "callback_url": report.callback_url,
            "integration_key_id": report.integration_key_id,
            "reporter_phone_masked": report.reporter.phone_masked if report.reporter else None}


def lifecycle_facts(step: CaseLifecycle) -> dict[str, Any]:
    """The facts one lifecycle step establishes. Each step sets its own facts only, so
    applying steps in their (per-case, per-partition) order gives the case's current state."""
    facts: dict[str, Any] = {"status": step.to_status.value, "channel": step.channel.value}
    if step.lead_department:
        facts["lead_department"] = step.lead_department.value
    if step.tier:
        facts["tier"] = step.tier.value
    if step.activity is not None:
        return facts  # a note or an extension: the status and its facts stay as they are
    data = step.data
    match step.to_status:
        case Status.RESOLVED:
            facts.update(outcome=Status.RESOLVED.value, agreement=data.agreement,
                         agreement_amount=data.agreement_amount)
        case Status.FAILED:
            facts.update(outcome=Status.FAILED.value, failure_reason=data.failure_reason)
        case Status.REFERRED:
            facts.update(outcome=Status.REFERRED.value,
                         referral=data.referral.value if data.referral else None)
        case Status.WITHDRAWN:
            facts.update(outcome=Status.WITHDRAWN.value, withdrawal_reason=step.reason)
        case Status.RETURNED_TO_SOURCE:
            facts.update(outcome=Status.RETURNED_TO_SOURCE.value, return_reason=step.reason)
        case Status.ESCALATED:
            # Routed again one tier up: the earlier attempt's outcome no longer stands.
            facts.update(outcome=None, agreement=None, agreement_amount=None,
                         failure_reason=None, referral=None)
        case Status.CLOSED:
            facts["closed_at"] = step.at
            # A report merged into a main case (合并) closes with the main case's outcome in
            # its closing step: its own source hears that result.
            if data.agreement is not None or data.agreement_amount is not None:
                facts.update(outcome=Status.RESOLVED.value, agreement=data.agreement,
                             agreement_amount=data.agreement_amount)
            elif data.referral is not None:
                facts.update(outcome=Status.REFERRED.value, referral=data.referral.value,
                             failure_reason=data.failure_reason)
            elif data.failure_reason is not None:
                facts.update(outcome=Status.FAILED.value, failure_reason=data.failure_reason)
        case Status.VISITED:
            facts["visited_at"] = step.at
        case Status.RATED:
            facts["satisfaction"] = data.satisfaction
    return facts


_REFERRAL_ZH = {Referral.LITIGATION.value: "诉讼", Referral.ARBITRATION.value: "仲裁",
                Referral.ADMINISTRATIVE.value: "行政处理"}


def outcome_summary(facts: CaseFacts) -> str:
    """The result in the hotline's words (办理结果), free text masked."""
    match facts.outcome:
        case Status.RESOLVED.value:
            text = "调解成功"
            if facts.agreement:
                text += f"，达成协议：{facts.agreement}"
            if facts.agreement_amount is not None:
                text += f"（协议金额{facts.agreement_amount:g}元）"
        case Status.REFERRED.value:
            text = "调解未成功，已引导" + _REFERRAL_ZH.get(facts.referral or "", "其他途径") + "解决"
            if facts.failure_reason:
                text += f"（{facts.failure_reason}）"
        case Status.FAILED.value:
            text = "调解未成功" + (f"：{facts.failure_reason}" if facts.failure_reason else "")
        case Status.WITHDRAWN.value:
            text = "当事人撤回" + (f"：{facts.withdrawal_reason}" if facts.withdrawal_reason
                                   else "")
        case Status.RETURNED_TO_SOURCE.value:
            text = "退单（非本中心职责）" + (f"：{facts.return_reason}" if facts.return_reason
                                        else "")
        case _:
            text = "已办结"
    return scrub(text)


# The activities of a case the hotline hears of, as its steps (not its own updates: 补充,
# 催办 and a changed deadline came from it, and were answered when it sent them).
_ACTIVITY_STEPS = {CaseActivity.PROGRESS_NOTE: HotlineStep.PROGRESS,
                   CaseActivity.EXTENSION_REQUESTED: HotlineStep.EXTENSION_REQUESTED,
                   CaseActivity.EXTENSION_APPROVED: HotlineStep.EXTENSION_APPROVED,
                   CaseActivity.EXTENSION_DENIED: HotlineStep.EXTENSION_DENIED}


def hotline_step(step: CaseLifecycle) -> HotlineStep | None:
    """The step of the 12345 work order this lifecycle event is, if the hotline tracks it:
    签收 (accepted), 过程反馈 and 延期 (activities), 办结 or 退单 (closed), 回访 (visited,
    rated)."""
    if step.activity is not None:
        return _ACTIVITY_STEPS.get(step.activity)
    if step.to_status is Status.ACCEPTED:
        return HotlineStep.SIGNED_FOR
    if step.to_status in FEEDBACK_STATUSES:
        return HotlineStep(step.to_status.value)
    return None


def _day_and_time(at: datetime | None) -> str:
    """A limit as an operator reads it to a caller, in Beijing time: 2026年12月15日09:30."""
    return f"{in_china(at):%Y年%m月%d日%H:%M}" if at else ""


def _activity_text(step: CaseLifecycle, kind: HotlineStep) -> str:
    data = step.data
    match kind:
        case HotlineStep.SIGNED_FOR:
            department = DEPARTMENT_ZH[step.lead_department] if step.lead_department else ""
            return f"已签收，承办单位：{department}"
        case HotlineStep.PROGRESS:
            return f"过程反馈：{data.notes or ''}"
        case HotlineStep.EXTENSION_REQUESTED:
            return f"申请延期至{_day_and_time(data.requested_resolve_by)}：{step.reason or ''}"
        case HotlineStep.EXTENSION_APPROVED:
            return f"延期申请已同意，办理期限至{_day_and_time(data.resolve_by)}"
        case _:
            return "延期申请未同意" + (f"：{step.reason}" if step.reason else "")


def hotline_feedback(facts: CaseFacts, step: CaseLifecycle) -> HotlineFeedback | None:
    """The callback a 12345 work order gets for this step, if any: the step in the
    hotline's terms, and the case's version as its sequence (steps go out in that order)."""
    kind = hotline_step(step)
    if kind is None:
        return None
    if kind.value in FEEDBACK_STATUSES:
        feedback = feedback_at(facts, step.to_status, step.external_id)
        return feedback.model_copy(update={"sequence": step.version, "at": step.at}) \
            if feedback else None
    if not facts.may_call_back:
        return None
    data = step.data
    extension = None
    if data.extension_id:
        requested = kind is HotlineStep.EXTENSION_REQUESTED
        extension = HotlineExtension(
            extension_id=data.extension_id, requested_resolve_by=data.requested_resolve_by,
            reason=scrub(step.reason) if step.reason else None,
            decision=None if requested else data.extension_decision)
    department = step.lead_department or (
        Department(facts.lead_department) if facts.lead_department else None)
    return HotlineFeedback(
        order_no=facts.external_id or step.external_id, case_id=facts.case_id, step=kind,
        sequence=step.version, at=step.at, status=step.to_status,
        result=scrub(_activity_text(step, kind)), handling_department=department,
        closed_at=None, note=scrub(data.notes) if data.notes else None,
        extension=extension, resolve_by=data.resolve_by)


@dataclass(frozen=True)
class CallbackDestination:
    """Where one callback of a work order goes: the order's own callback_url, or else the
    endpoint registered by the integration that posted it (its URL and secrets are read when
    sending, so a changed URL or a rotated secret applies to callbacks still pending)."""

    url: str | None = None
    endpoint_key_id: str | None = None


def callback_destination(facts: CaseFacts, step: HotlineStep,
                         endpoints: Mapping[str, Collection[str]]
                         ) -> CallbackDestination | None:
    """The order's callback_url gets every step, as always; an order without one goes to its
    integration's registered endpoint when that endpoint wants the step (`endpoints`: the
    steps each integration's endpoint wants, by key id); else nowhere."""
    if facts.callback_url:
        return CallbackDestination(url=facts.callback_url)
    key_id = facts.integration_key_id
    if key_id is not None and step.value in endpoints.get(key_id, ()):
        return CallbackDestination(endpoint_key_id=key_id)
    return None


def disclosed(feedback: HotlineFeedback, actor: str | None, *, name_handler: bool,
              contacts: Mapping[str, str]) -> HotlineFeedback:
    """The feedback with the handler (承办人: the person who took the step, never the system)
    and the handling department's public contact, as far as the centre discloses them."""
    handler = (scrub(actor) if name_handler and actor and not actor.startswith("urn:")
               else None)
    department = feedback.handling_department
    contact = contacts.get(department.value) if department else None
    return feedback.model_copy(update={"handler": handler, "handler_contact": contact})


def feedback_at(facts: CaseFacts, status: Status, external_id: str | None = None
                ) -> HotlineFeedback | None:
    """The feedback for a case that has reached `status` (a step, or, when the report came
    after the steps, where the case stands), if its work order has a callback."""
    if status not in FEEDBACK_STATUSES or not facts.may_call_back:
        return None
    department = facts.lead_department
    returned = facts.outcome == Status.RETURNED_TO_SOURCE.value
    step = (HotlineStep.RETURNED if returned and status is Status.CLOSED
            else HotlineStep(status.value))
    return HotlineFeedback(
        order_no=facts.external_id or external_id or "", case_id=facts.case_id, step=step,
        status=status, result=outcome_summary(facts),
        handling_department=Department(department) if department else None,
        closed_at=facts.closed_at, satisfaction=facts.satisfaction,
        visited_at=facts.visited_at,
        returned=returned,
        return_reason=scrub(facts.return_reason) if facts.return_reason else None)


def redact_lifecycle(step: CaseLifecycle) -> CaseLifecycle:
    """Mask any phone or id number a mediator typed into the free text of a step; events
    otherwise carry only masked numbers already."""
    data = step.data
    texts = {k: v for k, v in {"mediator": data.mediator, "notes": data.notes,
                               "agreement": data.agreement,
                               "failure_reason": data.failure_reason,
                               "visit_notes": data.visit_notes}.items() if v}
    return step.model_copy(update={
        "reason": scrub(step.reason) if step.reason else None,
        "data": data.model_copy(update={k: scrub(v) for k, v in texts.items()})})


# ---------------------------------------------------------------------------------------------
# SMS to the reporting citizen

SMS_RECEIVED = "received"
SMS_CLOSED = "closed"
SMS_PLACEHOLDERS: Mapping[str, frozenset[str]] = {
    SMS_RECEIVED: frozenset({"case_id", "external_id"}),
    SMS_CLOSED: frozenset({"case_id", "external_id", "result"}),
}


def check_sms_template(template_name: str, template: str) -> None:
    """Raise ValueError when a template uses a placeholder it will not get."""
    allowed = SMS_PLACEHOLDERS[template_name]
    try:
        template.format(**dict.fromkeys(allowed, "x"))
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"SMS template '{template_name}' is invalid ({exc!r}); "
                         f"placeholders: {', '.join(sorted(allowed))}") from exc


def wants_sms_on_receipt(report: CaseReported, channels: Collection[str]) -> bool:
    """`channels`: the channels whose citizens the centre texts (FQ_SMS_CHANNELS)."""
    return (report.channel in CITIZEN_CHANNELS and report.channel in channels
            and report.reporter is not None
            and bool(report.reporter.phone_hash or report.reporter.phone_masked))


def wants_sms_on_closure(facts: CaseFacts, step: CaseLifecycle, channels: Collection[str]
                         ) -> bool:
    return (step.to_status == Status.CLOSED and step.activity is None
            and texts_the_citizen(facts, channels))


def texts_the_citizen(facts: CaseFacts, channels: Collection[str]) -> bool:
    return (facts.reporter_phone_masked is not None and facts.channel in CITIZEN_CHANNELS
            and facts.channel in channels)


def sms_text(template: str, **values: str) -> str:
    return scrub(template.format(**values))


@dataclass(frozen=True)
class SmsMessage:
    phone: str = field(repr=False)  # never in a repr, so never in a log line by accident
    text: str
    template: str
    reference: str


# ---------------------------------------------------------------------------------------------
# The outside services notify depends on, as it needs them

class DeliveryFailed(Exception):
    """An attempt failed. `permanent`: retrying cannot help, so the delivery is dead at once."""

    def __init__(self, reason: str, status_code: int | None = None,
                 permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code
        self.permanent = permanent


class SmsGateway(Protocol):
    """Sends one text message; raises DeliveryFailed when the provider refuses or fails."""

    async def send(self, message: SmsMessage) -> None: ...

    async def aclose(self) -> None: ...


class ContactDirectory(Protocol):
    """Where the reporting citizen's phone lives in clear (intake). Returns None when the case
    has no contact phone; raises DeliveryFailed when the directory cannot answer."""

    async def contact_phone(self, case_id: str) -> str | None: ...

    async def aclose(self) -> None: ...


def with_contact(event_json: dict[str, Any], phone: str | None) -> dict[str, Any]:
    """The event with the citizen's phone as CloudEvents extension attribute `contactphone`
    (for subscriptions authorised for personal data)."""
    return {**event_json, "contactphone": phone} if phone else event_json

