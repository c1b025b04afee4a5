"""The OpenAPI `webhooks` (issue 23): every body fengqiao POSTs outside is documented from the
contracts' models, so a receiver can be generated, and what notify really sends fits it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from jsonschema import Draft202012Validator

from contracts.api_notify import HotlineFeedback
from contracts.enums import Channel, Department, Status
from contracts.events import CaseLifecycle, CaseLifecycleEvent
from contracts.webhooks import WEBHOOKS
from kit.webhook_docs import webhooks_document

AT = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def body_schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    operation = document["webhooks"][name]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]
    return {**ref, "components": document["components"]}


def test_every_webhook_and_callback_is_documented_with_its_signature_headers() -> None:
    document = webhooks_document()
    assert document["openapi"].startswith("3.1")
    assert set(document["webhooks"]) == {hook.name for hook in WEBHOOKS} == {
        "case-routed", "case-lifecycle", "case-supervision", "hotline-feedback"}
    for name, item in document["webhooks"].items():
        headers = {p["name"] for p in item["post"]["parameters"] if p["in"] == "header"}
        assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}, name
        assert "HMAC-SHA256" in item["post"]["description"]


def test_the_bodies_notify_sends_fit_the_documented_schemas() -> None:
    document = webhooks_document()
    feedback = HotlineFeedback(order_no="GD-1", case_id="FQ1", status=Status.CLOSED,
                               result="调解成功", handling_department=Department.JUDICIAL_OFFICE,
                               closed_at=AT)
    step = CaseLifecycleEvent.wrap(CaseLifecycle(
        case_id="FQ1", version=3, from_status=Status.ROUTED, to_status=Status.ACCEPTED,
        actor="司法所", at=AT, channel=Channel.HOTLINE_12345, external_id="GD-1"),
        source="mediation", subject="FQ1")
    for name, body in (("hotline-feedback", feedback), ("case-lifecycle", step)):
        instance = orjson.loads(body.model_dump_json())
        errors = list(Draft202012Validator(body_schema(document, name)).iter_errors(instance))
        assert not errors, (name, [e.message for e in errors])
    wrong = {**orjson.loads(feedback.model_dump_json()), "status": "not-a-status"}
    assert list(Draft202012Validator(body_schema(document, "hotline-feedback"))
                .iter_errors(wrong))
