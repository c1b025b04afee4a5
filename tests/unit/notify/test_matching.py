"""Who hears about what: kinds, filters, and what notify knows about a case."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts.api_notify import EVENT_KINDS, SubscriptionIn
from services.notify.domain import CaseFacts, Notice, SubscriptionFilter


def routed_notice(**overrides: object) -> Notice:
    values: dict[str, object] = {
        "kind": "routed", "departments": frozenset({"judicial_office", "police_station"}),
        "tier": "town", "risk": "red", "category": "neighbor", "jurisdiction": "330102001001"}
    return Notice(**{**values, **overrides})  # type: ignore[arg-type]


def sub(kinds: set[str] | None = None, **filters: set[str]) -> SubscriptionFilter:
    return SubscriptionFilter(frozenset(kinds or {"routed"}),
                              frozenset(filters.pop("departments", set())),
                              **{k: frozenset(v) for k, v in filters.items()})


@pytest.mark.parametrize("subscription,admitted", [
    (sub(), True),
    (sub(departments={"police_station"}), True),  # a cooperating department hears too
    (sub(departments={"health"}), False),
    (sub(tiers={"town", "county"}), True),
    (sub(tiers={"village"}), False),
    (sub(risks={"red"}), True),
    (sub(risks={"blue"}), False),
    (sub(categories={"neighbor", "labor"}), True),
    (sub(categories={"labor"}), False),
    (sub(jurisdictions={"330102"}), True),  # the county's prefix covers its villages
    (sub(jurisdictions={"330102002"}), False),
    (sub(departments={"judicial_office"}, risks={"red"}, tiers={"town"}), True),
    (sub(departments={"judicial_office"}, risks={"blue"}), False),  # filters combine with AND
    (sub({"lifecycle"}), False),
])
def test_filters_combine_with_and_and_values_with_or(subscription: SubscriptionFilter,
                                                      admitted: bool) -> None:
    assert subscription.admits(routed_notice()) is admitted


@pytest.mark.parametrize("kinds,kind,wanted", [
    ({"lifecycle"}, "lifecycle.closed", True),
    ({"lifecycle.closed"}, "lifecycle.closed", True),
    ({"lifecycle.closed"}, "lifecycle.accepted", False),
    ({"supervision"}, "supervision.level_2", True),
    ({"supervision.level_2"}, "supervision.warning", False),
    ({"routed", "lifecycle.rated"}, "routed", True),
    ({"supervision"}, "lifecycle.closed", False),
])
def test_a_kind_covers_its_statuses_or_levels(kinds: set[str], kind: str, wanted: bool) -> None:
    assert sub(kinds).wants(kind) is wanted


def test_a_filter_on_a_fact_not_yet_known_admits_nothing() -> None:
    unrouted = CaseFacts(case_id="FQ1").notice("lifecycle.reported")
    assert sub({"lifecycle"}).admits(unrouted)
    assert not sub({"lifecycle"}, risks={"red"}).admits(unrouted)
    assert not sub({"lifecycle"}, jurisdictions={"33"}).admits(unrouted)


def test_a_lifecycle_notice_takes_routing_facts_and_the_events_own_department_and_tier() -> None:
    facts = CaseFacts(case_id="FQ1", category="labor", risk="orange", tier="town",
                      lead_department="hr_social_security",
                      cooperating_departments=["police_station"], jurisdiction="330102001")
    escalated = facts.notice("lifecycle.routed", departments=["judicial_office"], tier="county")
    assert escalated.departments == {"judicial_office", "hr_social_security", "police_station"}
    assert (escalated.tier, escalated.risk, escalated.category) == ("county", "orange", "labor")
    assert facts.notice("lifecycle.closed").tier == "town"


def test_subscription_kinds_are_checked_against_the_statuses_and_levels() -> None:
    ok = SubscriptionIn(name="x", url="https://example.org/hook",
                        kinds=["lifecycle.closed", "supervision.level_2", "routed"])
    assert ok.kinds == ["lifecycle.closed", "supervision.level_2", "routed"]
    assert "lifecycle.archived" in EVENT_KINDS and "supervision.warning" in EVENT_KINDS
    for bad in (["lifecycle.done"], ["supervision.level_3"], ["reported"], []):
        with pytest.raises(ValidationError):
            SubscriptionIn(name="x", url="https://example.org/hook",
                           kinds=bad)


@pytest.mark.parametrize("field,value", [
    ("jurisdictions", ["33010a"]), ("departments", ["police"]), ("risks", ["purple"]),
    ("url", "ftp://example.org"), ("name", "   "), ("colour", "red")])
def test_malformed_subscriptions_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        SubscriptionIn.model_validate({"name": "x", "url": "https://example.org/hook",
                                       field: value})
    assert info.value.errors()[0]["loc"][0] == field


def test_a_leader_subscribes_to_raised_supervision_notices() -> None:
    from contracts.api_notify import notice_kind
    from contracts.enums import NoticeAction

    assert notice_kind(NoticeAction.RAISED) == "supervision.notice.raised"
    assert "supervision.notice.raised" in EVENT_KINDS
    sub = SubscriptionIn(name="leader", url="https://leader.example/hook",
                         kinds=["supervision.notice.raised"])
    assert sub.kinds == ["supervision.notice.raised"]
