"""Repeat reports' keys, supervision notice levels and leader proposals: pure logic."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.enums import Category, Department, NoticeLevel, Risk, Tier
from contracts.events import Explanation, RoutingDecision, Sla
from services.mediation.domain.matters import (
    KeyKind,
    address_key,
    distance_metres,
    lookup_keys,
    match_keys,
    nearby_place_keys,
    normalise_address,
    place_key,
)
from services.mediation.domain.ownership import owner_proposed
from services.mediation.supervision_notices import next_level


def test_an_address_written_otherwise_is_the_same_address() -> None:
    assert normalise_address("城关街道 幸福路１２号。") == normalise_address("城关街道幸福路12号")
    assert address_key("城关街道 幸福路１２号") == address_key("城关街道幸福路12号")
    assert address_key("城关") is None  # too short to name a place


def test_a_place_within_100_m_is_in_a_neighbouring_cell() -> None:
    here, there = (29.70000, 120.20000), (29.70040, 120.20030)
    assert 40 < distance_metres(here, there) < 60
    assert place_key(*there) in nearby_place_keys(*here)
    assert distance_metres(here, (29.702, 120.2)) > 200


def test_a_report_is_keyed_by_hashes_never_by_numbers() -> None:
    report = {"reporter": {"phone_masked": "139****5678", "phone_hash": "h1"},
              "parties": [{"id_number_hash": "h2"}, {"name": "no numbers"}],
              "address": "城关街道幸福路12号", "location": {"lat": 29.7, "lon": 120.2}}
    keys = match_keys(report)
    assert {(k.kind, k.key) for k in keys if k.kind is KeyKind.PARTY} == {
        (KeyKind.PARTY, "h1"), (KeyKind.PARTY, "h2")}
    assert all("5678" not in k.key for k in keys)
    assert len([k for k in lookup_keys(report) if k.kind is KeyKind.PLACE]) == 9
    assert match_keys(None) == set()


def test_a_missed_notice_rises_one_level_and_stays_at_the_top() -> None:
    assert next_level(NoticeLevel.REMINDER) is NoticeLevel.URGE
    assert next_level(NoticeLevel.URGE) is NoticeLevel.SUPERVISE
    assert next_level(NoticeLevel.SUPERVISE) is NoticeLevel.LISTED
    assert next_level(NoticeLevel.LISTED) is None


def _decision(risk: Risk, prior: int) -> RoutingDecision:
    far = datetime(2099, 1, 1, tzinfo=UTC)
    return RoutingDecision(
        category=Category.NEIGHBOR, category_confidence=0.9, risk=risk,
        risk_signals=[f"prior_related:{prior}"] if prior else [], tier=Tier.VILLAGE,
        lead_department=Department.VILLAGE_MEDIATION, sla=Sla(accept_by=far, resolve_by=far),
        explanation=Explanation(zh="测试", en="test"), rules_version="test")


def test_a_leader_is_proposed_for_red_cases_and_repeat_matters() -> None:
    assert owner_proposed(_decision(Risk.RED, 0))
    assert owner_proposed(_decision(Risk.BLUE, 2))
    assert not owner_proposed(_decision(Risk.ORANGE, 1))
