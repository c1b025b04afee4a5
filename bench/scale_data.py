"""Years of realistic cases for `bench.data_scale`: each case's rows in mediation (the case,
about ten history rows, a supervision record when it ran late), intake (the report), the
router (its decision, its reporter's phone hash) and notify (its deliveries).

Rows are plain dicts keyed by column name, made a chunk of cases at a time, so that a
million cases never sit in memory at once. Deterministic for a seed and a case number:
loading 10,000 cases, then 90,000 more, gives the same rows as loading 100,000 at once."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import TEXTS
from contracts.enums import Category, Channel, Department, Risk, Status, Tier

YEARS = 4
# The newest case is a few minutes old; the oldest YEARS years.
END = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
SPAN_SECONDS = YEARS * 365 * 86400

# One case in a thousand mentions the reservoir: the word a `text=` search looks for.
RARE_WORD = "水库"

CHANNELS = ([Channel.HOTLINE_12345] * 45 + [Channel.GRID] * 25 + [Channel.WALK_IN] * 10
            + [Channel.POLICE] * 8 + [Channel.COURT] * 5 + [Channel.PETITION] * 5
            + [Channel.OPEN311] * 2)
RISKS = [Risk.BLUE] * 50 + [Risk.YELLOW] * 30 + [Risk.ORANGE] * 15 + [Risk.RED] * 5
TIERS = [Tier.VILLAGE] * 40 + [Tier.TOWN] * 45 + [Tier.COUNTY] * 15
# Category, its weight, its usual lead department.
CATEGORIES = [
    (Category.NEIGHBOR, 20, Department.VILLAGE_MEDIATION),
    (Category.MARRIAGE_FAMILY, 14, Department.WOMENS_FEDERATION),
    (Category.LABOR, 12, Department.HR_SOCIAL_SECURITY),
    (Category.PROPERTY_MANAGEMENT, 10, Department.HOUSING_CONSTRUCTION),
    (Category.LAND_RESOURCE, 8, Department.NATURAL_RESOURCES),
    (Category.CONSUMER_COMMERCIAL, 8, Department.MARKET_REGULATION),
    (Category.TRAFFIC_ACCIDENT, 6, Department.TRAFFIC_POLICE),
    (Category.DEBT_FINANCE, 6, Department.COURT),
    (Category.CONSTRUCTION, 5, Department.HOUSING_CONSTRUCTION),
    (Category.ENVIRONMENT, 4, Department.ECOLOGY_ENVIRONMENT),
    (Category.LAND_ACQUISITION, 3, Department.NATURAL_RESOURCES),
    (Category.MEDICAL, 2, Department.HEALTH),
    (Category.CAMPUS, 1, Department.EDUCATION),
    (Category.TOURISM, 1, Department.CULTURE_TOURISM),
]
CATEGORY_CHOICES = [c for c, weight, _ in CATEGORIES for _ in range(weight)]
LEAD = {c: d for c, _, d in CATEGORIES}
COOPERATING = [Department.JUDICIAL_OFFICE, Department.POLICE_STATION,
               Department.CIVIL_AFFAIRS, Department.AGRICULTURE_RURAL,
               Department.PETITION_OFFICE]
COUNTY = "330102"
TOWNS = [f"{COUNTY}{t:03d}" for t in range(1, 13)]
VILLAGES = [f"{town}{v:03d}" for town in TOWNS for v in range(1, 16)]
# Open statuses of recent cases, and the closed ones every case reaches after two months.
OPEN = ([Status.ROUTED] * 15 + [Status.ACCEPTED] * 20 + [Status.IN_MEDIATION] * 30
        + [Status.RESOLVED] * 8 + [Status.FAILED] * 2 + [Status.AWAITING_DISPATCH]
        + [Status.RETURNED])
CLOSED = [Status.ARCHIVED] * 5 + [Status.RATED] * 2 + [Status.VISITED] + [Status.CLOSED] * 2
PATH = [Status.REPORTED, Status.ROUTED, Status.ACCEPTED, Status.IN_MEDIATION,
        Status.RESOLVED, Status.CLOSED, Status.VISITED, Status.RATED, Status.ARCHIVED]
SUBSCRIPTIONS = [f"sub{n:02d}" for n in range(8)]


def case_id(i: int) -> str:
    return f"FQS{i:08d}"


def external_id(i: int) -> str:
    return f"EXT{i:08d}"


def event_id(i: int, n: int = 0) -> str:
    """The id of case i's n-th webhook delivery's event."""
    return f"{i:08d}-{n}-0000-0000-000000000000"


def channel_of(i: int, seed: int = 7) -> Channel:
    """Case i's channel, drawn as `_case` draws it."""
    rng = random.Random(seed * 1_000_003 + i)
    rng.random()
    return rng.choice(CHANNELS)


def phone_hash(n: int) -> str:
    return f"{n * 2654435761 % (1 << 64):016x}".rjust(64, "0")


@dataclass
class Chunk:
    """The rows of a run of cases, table by table."""

    tables: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {
        "mediation_cases": [], "mediation_case_history": [], "mediation_supervision": [],
        "intake_cases": [], "router_decisions": [], "router_identity_hashes": [],
        "notify_deliveries": []})


def chunks(start: int, stop: int, size: int, seed: int = 7) -> Iterator[tuple[int, Chunk]]:
    """Cases [start, stop) in chunks of `size`: (cases in the chunk, its rows)."""
    for first in range(start, stop, size):
        last = min(first + size, stop)
        chunk = Chunk()
        for i in range(first, last):
            _case(i, seed, chunk)
        yield last - first, chunk


def _case(i: int, seed: int, out: Chunk) -> None:
    rng = random.Random(seed * 1_000_003 + i)
    received = END - timedelta(seconds=rng.random() * SPAN_SECONDS)
    age = END - received
    cid = case_id(i)
    channel = rng.choice(CHANNELS)
    category = rng.choice(CATEGORY_CHOICES)
    risk, tier = rng.choice(RISKS), rng.choice(TIERS)
    lead = LEAD[category]
    cooperating = sorted({rng.choice(COOPERATING) for _ in range(rng.randrange(3))} - {lead})
    village = rng.choice(VILLAGES)
    text = TEXTS[i % len(TEXTS)] + (RARE_WORD if i % 1000 == 7 else "")
    accept_by = received + timedelta(days=1 if risk is Risk.RED else 3)
    resolve_by = received + timedelta(days=30)
    status = rng.choice(OPEN) if age < timedelta(days=60) else rng.choice(CLOSED)
    closed = status in (Status.CLOSED, Status.VISITED, Status.RATED, Status.ARCHIVED)
    # The steps it went through, one day apart at most: its history.
    steps = PATH[:PATH.index(status) + 1] if status in PATH else [
        Status.REPORTED, Status.ROUTED, Status.ACCEPTED, status]
    times = [received]
    for _ in steps[1:]:
        times.append(min(times[-1] + timedelta(seconds=rng.randrange(60, 86400)), END))
    at = dict(zip(steps, times, strict=True))
    late = not closed and (resolve_by < END or (status is Status.ROUTED and accept_by < END))
    decision = {"category": category.value, "risk": risk.value, "tier": tier.value,
                "lead_department": lead.value,
                "cooperating_departments": [d.value for d in cooperating],
                "rules_fired": [f"category.{category.value}", f"risk.{risk.value}"],
                "explanation_zh": f"按{category.value}分派至{lead.value}",
                "explanation_en": f"{category.value} goes to {lead.value}",
                "accept_within_hours": 24 if risk is Risk.RED else 72,
                "resolve_within_days": 30}
    out.tables["mediation_cases"].append({
        "case_id": cid, "channel": channel.value, "external_id": external_id(i),
        "status": status.value, "version": len(steps), "received_at": received, "text": text,
        "report": {"text": text, "channel": channel.value, "address": village},
        "category": category.value, "risk": risk.value, "tier": tier.value,
        "lead_department": lead.value,
        "cooperating_departments": [d.value for d in cooperating],
        "jurisdiction_code": village, "decision": decision, "routing_round": 1,
        "prior_related": 1 if rng.random() < 0.08 else 0,
        "returns": 1 if status is Status.RETURNED else 0, "reassignments": 0,
        "routed_lead_department": lead.value, "routed_lead_rule": f"category.{category.value}",
        "review_flagged": status is Status.ROUTED and rng.random() < 0.1,
        "mediator": None, "referral": None,
        "satisfaction": rng.randrange(2, 6) if Status.RATED in at else None,
        "limits_from": received, "accept_from": received, "accept_by": accept_by,
        "resolve_by": resolve_by, "accepted_at": at.get(Status.ACCEPTED),
        "mediated_at": at.get(Status.IN_MEDIATION), "resolved_at": at.get(Status.RESOLVED),
        "escalated_at": None, "closed_at": at.get(Status.CLOSED),
        "acceptance_supervised": None, "resolution_supervised": "level_1" if late else None,
        "supervision_due_at": None if closed else (accept_by if status is Status.ROUTED
                                                   else resolve_by),
        "updated_at": times[-1], "personal_data_erased_at": None})
    history = out.tables["mediation_case_history"]
    previous: Status | None = None
    for version, (step, when) in enumerate(zip(steps, times, strict=True), start=1):
        history.append({"case_id": cid, "version": version,
                        "from_status": previous.value if previous else None,
                        "to_status": step.value, "actor": "system" if version < 3 else "调解员",
                        "reason": None, "at": when, "data": {}})
        previous = step
    # A few notes between steps (visits, calls): about ten history rows per case in all.
    for n in range(max(0, 10 - len(steps))):
        history.append({"case_id": cid, "version": None, "from_status": status.value,
                        "to_status": status.value, "actor": "调解员", "reason": f"回访记录{n}",
                        "at": min(times[-1] + timedelta(hours=n + 1), END), "data": {}})
    if late:
        out.tables["mediation_supervision"].append({
            "case_id": cid, "routing_round": 1, "sla_kind": "resolution", "level": "level_1",
            "deadline": resolve_by, "tier": "county", "emitted_at": resolve_by})
    out.tables["intake_cases"].append({
        "case_id": cid, "channel": channel.value, "external_id": external_id(i),
        "fingerprint": f"{i:064x}", "received_at": received, "created_at": received,
        "native": {"order_no": external_id(i), "content": text, "address": village}})
    out.tables["router_decisions"].append({
        "case_id": cid, "routing_round": 1, "decision": decision,
        "routed_at": times[1] if len(times) > 1 else received, "kind": None,
        "correction": None, "awaiting_dispatch": status is Status.AWAITING_DISPATCH})
    # Callers come back: a phone in a pool a third the size of the cases.
    out.tables["router_identity_hashes"].append({
        "identity_hash": phone_hash(rng.randrange(max(1, i // 3 + 1))), "case_id": cid,
        "received_at": received})
    deliveries = out.tables["notify_deliveries"]
    for n, step in enumerate(steps[1:3]):
        subscription = SUBSCRIPTIONS[(i + n) % len(SUBSCRIPTIONS)]
        dead = rng.random() < 0.005
        deliveries.append({
            "target": "webhook", "subscription_id": subscription, "url": None,
            "event_id": event_id(i, n), "case_id": cid,
            "kind": f"case.{step.value}", "body": b'{"case_id":"' + cid.encode() + b'"}',
            "status": "dead" if dead else "succeeded", "attempts": 8 if dead else 1,
            "next_attempt_at": at[step].timestamp(), "last_status_code": 500 if dead else 200,
            "last_error": None, "created_at": at[step],
            "delivered_at": None if dead else at[step]})
    if channel is Channel.HOTLINE_12345 and closed:
        deliveries.append({
            "target": "hotline_feedback", "subscription_id": "hotline_feedback",
            "url": "https://hotline.example/callback",
            "event_id": event_id(i, 9), "case_id": cid,
            "kind": "case.closed", "body": b"{}", "status": "succeeded", "attempts": 1,
            "next_attempt_at": times[-1].timestamp(), "last_status_code": 200,
            "last_error": None, "created_at": times[-1], "delivered_at": times[-1]})
