"""Consumers that act on few of a topic's events decide from the JSON, before validating:
the router skips routed events that are not a dispatcher's decision and lifecycle steps
that are not an escalation or return; intake's Open311 follower skips other channels'
steps. Anything malformed is still validated (and dead-lettered with its reason)."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.events import CaseLifecycleEvent, CaseRoutedEvent
from services.intake.open311.handlers import MAY_BE_OPEN311_STEP
from services.router.handlers import MAY_BE_BY_HAND, MAY_ROUTE_AGAIN


def event(event_type: str = CaseLifecycleEvent.event_type, **data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": "e1", "type": event_type, "data": data}


def routed(**data: Any) -> dict[str, Any]:
    return event(CaseRoutedEvent.event_type, **data)


@pytest.mark.parametrize("payload,wanted", [
    (routed(correction=None), False),
    (routed(), False),
    (routed(correction={"kind": "return"}), False),
    (routed(correction={"kind": "reassign"}), True),
    (routed(correction={"kind": "dispatch"}), True),
    (routed(correction={"kind": "bogus"}), True),       # invalid: validated, dead-lettered
    (routed(correction="reassign"), True),
    (event(correction=None), True),  # another topic's event here: validated, dead-lettered
    ({"data": "not an object"}, True),
    (["not", "an", "event"], True),
])
def test_the_router_decodes_only_dispatchers_decisions(payload: Any, wanted: bool) -> None:
    assert MAY_BE_BY_HAND(payload) is wanted


@pytest.mark.parametrize("to_status,wanted", [
    ("accepted", False), ("closed", False), ("escalated", True), ("returned", True),
    ("no-such-status", True), (None, True), (7, True)])
def test_the_router_decodes_only_steps_it_routes_again(to_status: Any, wanted: bool) -> None:
    assert MAY_ROUTE_AGAIN(event(to_status=to_status)) is wanted


@pytest.mark.parametrize("channel,wanted", [
    ("hotline_12345", False), ("grid", False), ("open311", True), ("mars", True)])
def test_intake_decodes_only_open311_steps(channel: str, wanted: bool) -> None:
    assert MAY_BE_OPEN311_STEP(event(channel=channel)) is wanted
