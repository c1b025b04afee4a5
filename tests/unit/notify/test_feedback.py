"""What the hotline (办结反馈) and the citizen (SMS) are told, built from lifecycle steps."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.enums import Channel, Department, Referral, Status
from contracts.events import CaseLifecycle, CaseReported, PartyRef, TransitionData
from kit.settings import Settings
from services.notify.domain import (
    SMS_CLOSED,
    SMS_RECEIVED,
    CaseFacts,
    SmsMessage,
    check_sms_template,
    hotline_feedback,
    lifecycle_facts,
    outcome_summary,
    redact_lifecycle,
    sms_text,
    wants_sms_on_closure,
    wants_sms_on_receipt,
    with_contact,
)

AT = datetime(2026, 11, 30, 9, tzinfo=UTC)
HOTLINE_CASE = CaseFacts(case_id="FQ1", channel="hotline_12345", external_id="GD-1",
                         callback_url="https://hotline.example/feedback",
                         reporter_phone_masked="139****5678", lead_department="judicial_office")


def step(to: Status, **data: Any) -> CaseLifecycle:
    return CaseLifecycle(case_id="FQ1", version=5, from_status=None, to_status=to, actor="m1",
                         reason=data.pop("reason", None), at=AT, channel=Channel.HOTLINE_12345,
                         external_id="GD-1", data=TransitionData(**data))


def through(facts: CaseFacts, *steps: CaseLifecycle) -> CaseFacts:
    """Apply steps as notify does: each sets the facts it knows."""
    for s in steps:
        facts = replace(facts, **lifecycle_facts(s))
    return facts


def test_closure_feeds_back_the_agreement_department_and_time_in_the_hotlines_terms() -> None:
    resolved = step(Status.RESOLVED, agreement="楼上住户负责维修漏水管道", agreement_amount=800)
    closed = step(Status.CLOSED)
    facts = through(HOTLINE_CASE, resolved, closed)
    feedback = hotline_feedback(facts, closed)
    assert feedback is not None
    assert (feedback.order_no, feedback.case_id, feedback.status) == ("GD-1", "FQ1",
                                                                      Status.CLOSED)
    assert feedback.result == "调解成功，达成协议：楼上住户负责维修漏水管道（协议金额800元）"
    assert feedback.handling_department is Department.JUDICIAL_OFFICE
    assert feedback.closed_at == AT and feedback.satisfaction is None


def test_the_rating_comes_back_with_the_satisfaction_and_the_same_result() -> None:
    rated = step(Status.RATED, satisfaction=4)
    facts = through(HOTLINE_CASE, step(Status.RESOLVED, agreement="赔偿"), step(Status.CLOSED),
                    step(Status.VISITED, visit_notes="满意"), rated)
    feedback = hotline_feedback(facts, rated)
    assert feedback is not None
    assert (feedback.satisfaction, feedback.visited_at, feedback.closed_at) == (4, AT, AT)
    assert feedback.result.startswith("调解成功")


@pytest.mark.parametrize("steps,result", [
    ([step(Status.FAILED, failure_reason="双方分歧大"), step(Status.REFERRED,
                                                        referral=Referral.LITIGATION)],
     "调解未成功，已引导诉讼解决（双方分歧大）"),
    ([step(Status.WITHDRAWN, reason="已自行和解")], "当事人撤回：已自行和解"),
    ([], "已办结"),
    ([step(Status.RESOLVED, agreement="退款"), step(Status.FAILED),
      step(Status.ESCALATED)], "已办结"),
])
def test_the_result_says_how_the_case_ended(steps: list[CaseLifecycle], result: str) -> None:
    assert outcome_summary(through(HOTLINE_CASE, *steps)) == result


@pytest.mark.parametrize("facts,to", [
    (HOTLINE_CASE, Status.RESOLVED),  # not yet closed
    (HOTLINE_CASE, Status.ARCHIVED),
    (replace(HOTLINE_CASE, callback_url=None), Status.CLOSED),
    (replace(HOTLINE_CASE, channel="grid"), Status.CLOSED),
])
def test_no_feedback_without_a_hotline_callback_or_before_closure(facts: CaseFacts,
                                                                  to: Status) -> None:
    assert hotline_feedback(facts, step(to)) is None


def test_numbers_typed_into_free_text_are_masked_in_events_feedback_and_sms() -> None:
    resolved = step(Status.RESOLVED, agreement="张三（13912345678）赔付800元",
                    notes="身份证110105199001011234", reason="电话13800138000")
    redacted = redact_lifecycle(resolved)
    dumped = redacted.model_dump_json()
    assert "13912345678" not in dumped and "13800138000" not in dumped
    assert "110105199001011234" not in dumped and "139****5678" in dumped
    facts = through(HOTLINE_CASE, resolved, step(Status.CLOSED))
    assert "13912345678" not in outcome_summary(facts)
    text = sms_text(Settings().sms_template_closed, case_id="FQ1", external_id="GD-1",
                    result=outcome_summary(facts))
    assert "FQ1" in text and "139****5678" in text and "13912345678" not in text


def reported(channel: Channel, phone: bool) -> CaseReported:
    reporter = PartyRef(phone_masked="139****5678", phone_hash="h" * 64) if phone else None
    return CaseReported(case_id="FQ1", channel=channel, external_id="X1", received_at=AT,
                        text="漏水", reporter=reporter)


# A centre that texts every citizen channel's reporters, 12345 callers included.
TEXTED = ("hotline_12345", "walk_in", "open311", "petition")


@pytest.mark.parametrize("channel,phone,wanted", [
    (Channel.HOTLINE_12345, True, True), (Channel.WALK_IN, True, True),
    (Channel.HOTLINE_12345, False, False), (Channel.GRID, True, False),
    (Channel.COURT, True, False)])
def test_the_citizen_is_texted_on_receipt_when_they_reported_with_a_phone(
        channel: Channel, phone: bool, wanted: bool) -> None:
    assert wants_sms_on_receipt(reported(channel, phone), TEXTED) is wanted


def test_the_citizen_is_texted_on_closure_only() -> None:
    assert wants_sms_on_closure(HOTLINE_CASE, step(Status.CLOSED), TEXTED)
    assert not wants_sms_on_closure(HOTLINE_CASE, step(Status.RATED), TEXTED)
    assert not wants_sms_on_closure(replace(HOTLINE_CASE, reporter_phone_masked=None),
                                    step(Status.CLOSED), TEXTED)


def test_12345_callers_are_left_to_the_hotline_unless_the_centre_texts_them_too() -> None:
    """The hotline texts its own callers; by default the centre does not text them again."""
    default = Settings().sms_channels
    assert not wants_sms_on_receipt(reported(Channel.HOTLINE_12345, True), default)
    assert not wants_sms_on_closure(HOTLINE_CASE, step(Status.CLOSED), default)
    assert wants_sms_on_receipt(reported(Channel.WALK_IN, True), default)
    assert Settings(sms_channels=["hotline_12345"]).sms_channels == ["hotline_12345"]
    with pytest.raises(ValidationError, match="only citizen channels"):
        Settings(sms_channels=["walk_in", "grid"])


def test_sms_templates_are_checked_at_start() -> None:
    settings = Settings()
    check_sms_template(SMS_RECEIVED, settings.sms_template_received)
    check_sms_template(SMS_CLOSED, settings.sms_template_closed)
    with pytest.raises(ValueError, match="placeholders"):
        check_sms_template(SMS_RECEIVED, "结果：{result}")
    with pytest.raises(ValueError):
        check_sms_template(SMS_CLOSED, "{case_id")


def test_a_phone_is_never_in_the_repr_of_a_message() -> None:
    message = SmsMessage(phone="13912345678", text="您好", template="received", reference="m1")
    assert "13912345678" not in repr(message)


def test_only_authorised_subscriptions_get_the_contact_as_an_extension_attribute() -> None:
    event = {"specversion": "1.0", "id": "e1", "data": {}}
    assert with_contact(event, "13912345678")["contactphone"] == "13912345678"
    assert with_contact(event, None) == event
