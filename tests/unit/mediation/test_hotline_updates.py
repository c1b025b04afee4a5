"""The hotline's updates, without I/O: which fields each kind takes (422 naming the field at
fault), the fingerprint that tells a repeat from a conflict, and the urgencies' limits read
from the router's own rules."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from contracts.api_mediation import HotlineUpdate
from contracts.enums import Urgency
from services.mediation.hotline_updates import ROUTER_RULES, fingerprint, urgency_limits
from services.router.domain.rules import load_rules

SECRET = "unit-test-hash-secret"


@pytest.mark.parametrize(("body", "fields"), [
    ({"kind": "supplement", "text": "补充"}, []),
    ({"kind": "supplement"}, ["text"]),
    ({"kind": "supplement", "text": " "}, ["text"]),
    ({"kind": "supplement", "text": "x", "urgency": "urgent"}, ["urgency"]),
    ({"kind": "chaser"}, []),
    ({"kind": "chaser", "text": "催问进度"}, []),
    ({"kind": "chaser", "satisfaction": 5}, ["satisfaction"]),
    ({"kind": "deadline_change", "urgency": "urgent"}, []),
    ({"kind": "deadline_change", "deadline": "2030-01-01T00:00:00+08:00"}, []),
    ({"kind": "deadline_change"}, ["urgency"]),
    ({"kind": "deadline_change", "deadline": "2030-01-01T00:00:00"}, ["deadline"]),
    ({"kind": "follow_up", "satisfaction": 5, "text": "满意"}, []),
    ({"kind": "follow_up", "text": "满意"}, ["satisfaction"]),
    ({"kind": "follow_up", "satisfaction": 0, "text": "满意"}, ["satisfaction"]),
    ({"kind": "follow_up", "satisfaction": 3}, ["text"]),
    ({"kind": "praise", "text": "x"}, ["kind"]),
    ({"kind": "supplement", "text": "x", "colour": "red"}, ["colour"]),
])
def test_each_kind_takes_its_own_fields(body: dict[str, Any], fields: list[str]) -> None:
    try:
        HotlineUpdate.model_validate({"update_id": "U1", **body})
        refused: list[str] = []
    except ValidationError as exc:
        refused = [".".join(str(p) for p in e["loc"]) for e in exc.errors()]
    assert refused == fields


def test_a_repeat_has_the_same_fingerprint_and_a_change_differs_in_its_field_alone() -> None:
    first = HotlineUpdate(update_id="U1", kind="supplement", text="电话13912345678")
    again = HotlineUpdate(update_id="U1", kind="supplement", text="电话13912345678")
    other = HotlineUpdate(update_id="U1", kind="supplement", text="电话13912345679")
    assert fingerprint(first, SECRET) == fingerprint(again, SECRET)
    a, b = fingerprint(first, SECRET), fingerprint(other, SECRET)
    assert [name for name in a if a[name] != b[name]] == ["text"]
    assert "13912345678" not in str(a)


def test_the_urgencies_limits_are_the_routers() -> None:
    router = load_rules(ROUTER_RULES).sla.hotline_urgency
    ours = urgency_limits(None)
    assert ours.keys() == router.keys() and Urgency.VERY_URGENT in ours
    for urgency, limits in router.items():
        assert (ours[urgency].accept_hours, ours[urgency].resolve_days) == (
            limits.accept_hours, limits.resolve_days)
