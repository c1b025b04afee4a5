"""The default rules and the sample county, loaded once for every router domain test."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from contracts.enums import Channel
from contracts.events import CaseReported, PartyRef
from services.router.domain import (
    JurisdictionTree,
    RoutingRules,
    load_jurisdictions,
    load_rules,
)

ROOT = Path(__file__).resolve().parents[3]
RULES_PATH = ROOT / "services/router/rules/default.yaml"
JURISDICTIONS_PATH = ROOT / "services/router/data/jurisdictions.yaml"
DATA = ROOT / "tests/data"
RECEIVED_AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="session")
def rules() -> RoutingRules:
    return load_rules(RULES_PATH)


@pytest.fixture(scope="session")
def tree() -> JurisdictionTree:
    return load_jurisdictions(JURISDICTIONS_PATH)


def report(text: str, channel: Channel | str = Channel.HOTLINE_12345, *,
           parties: list[str] | None = None, **fields: Any) -> CaseReported:
    """A CaseReported for a test: the text and whatever fields the test cares about."""
    return CaseReported(
        case_id="c-test", channel=Channel(channel), external_id="x-test",
        received_at=fields.pop("received_at", RECEIVED_AT), text=text,
        parties=[PartyRef(name=f"p{i}", address=address)
                 for i, address in enumerate(parties or [])],
        **fields,
    )
