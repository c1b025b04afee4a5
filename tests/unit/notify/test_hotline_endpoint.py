"""Where a 12345 work order's callback goes: its own callback_url for every step; else the
endpoint its integration registered, for the steps that endpoint wants; else nowhere. And
what the delivery log shows of a receiver's URL."""

from __future__ import annotations

from dataclasses import replace

import pytest

from contracts.api_notify import HotlineStep
from contracts.enums import Status
from contracts.events import CaseReported
from services.notify.domain import (
    CallbackDestination,
    CaseFacts,
    callback_destination,
    feedback_at,
    reported_facts,
    without_query,
)

OWN = "https://hotline.example/cb/GD-1"
ENDPOINTS = {"k1": frozenset({"signed_for", "closed"}), "k2": frozenset({"closed"})}


def facts(callback_url: str | None = None, key: str | None = "k1",
          channel: str = "hotline_12345") -> CaseFacts:
    return CaseFacts(case_id="FQ1", channel=channel, external_id="GD-1",
                     callback_url=callback_url, integration_key_id=key)


@pytest.mark.parametrize("case,step,expected", [
    (facts(OWN), HotlineStep.PROGRESS, CallbackDestination(url=OWN)),  # the order's own: all
    (facts(OWN, key=None), HotlineStep.CLOSED, CallbackDestination(url=OWN)),
    (facts(), HotlineStep.SIGNED_FOR, CallbackDestination(endpoint_key_id="k1")),
    (facts(), HotlineStep.PROGRESS, None),  # not a step the endpoint wants
    (facts(key="k2"), HotlineStep.SIGNED_FOR, None),
    (facts(key="k3"), HotlineStep.CLOSED, None),  # registered no endpoint
    (facts(key=None), HotlineStep.CLOSED, None),  # posted without a key (the broker)
])
def test_a_callback_goes_to_the_orders_url_else_to_its_integrations_endpoint(
        case: CaseFacts, step: HotlineStep, expected: CallbackDestination | None) -> None:
    assert callback_destination(case, step, ENDPOINTS) == expected


def test_an_order_with_only_an_integration_may_be_called_back() -> None:
    assert facts().may_call_back
    assert facts(OWN, key=None).may_call_back
    assert not facts(key=None).may_call_back
    assert not facts(channel="grid").may_call_back  # only 12345 orders are called back


def test_the_report_tells_notify_its_integration() -> None:
    report = CaseReported.model_validate({
        "case_id": "FQ1", "channel": "hotline_12345", "external_id": "GD-1",
        "received_at": "2026-12-07T08:00:00+08:00", "text": "噪音", "integration_key_id": "k1"})
    known = CaseFacts(case_id="FQ1", **reported_facts(report))
    assert known.integration_key_id == "k1" and known.callback_url is None
    # Without a callback_url the result is still made: the endpoint may want it.
    closed = feedback_at(known, Status.CLOSED)
    assert closed is not None and closed.order_no == "GD-1"
    assert feedback_at(replace(known, integration_key_id=None), Status.CLOSED) is None


@pytest.mark.parametrize("url,shown", [
    ("https://hotline.example/cb?token=abc", "https://hotline.example/cb"),
    ("https://user:pw@hotline.example:8443/cb#x", "https://hotline.example:8443/cb"),
    ("http://10.1.2.3/12345/callback", "http://10.1.2.3/12345/callback"),
])
def test_the_delivery_log_shows_a_url_without_its_tokens(url: str, shown: str) -> None:
    assert without_query(url) == shown
