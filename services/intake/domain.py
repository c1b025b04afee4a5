"""From a channel's native payload to the canonical CaseReported, and how submitted reports
meet the ones already received: pure functions, no I/O.

Phone and id numbers leave this module only masked and as keyed hashes; free text is
scrubbed of numbers as well, since operators often type a caller's phone into the content.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel

from contracts.channels import (
    CourtReferral,
    GridReport,
    HotlineWorkOrder,
    Party,
    PetitionReferral,
    PoliceReferral,
    WalkInVisit,
)
from contracts.enums import Channel, PartyRole
from contracts.events import CaseReported, PartyRef
from kit.privacy import keyed_hash, mask_id_number, mask_phone, scrub

# DOMAIN.md: a court referral's mediation_deadline defaults to referred_at + 30 days.
COURT_MEDIATION_PERIOD = timedelta(days=30)

NativeT = TypeVar("NativeT", bound=BaseModel)


# Letters only, without I and O: easy to read out, and no run of digits that could pass
# for a phone or id number (log scrubbing would mask part of such a case id).
_CASE_ID_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


_CASE_ID_LENGTH = 14
_CASE_ID_CHOICES = len(_CASE_ID_LETTERS) ** _CASE_ID_LENGTH


def new_case_id(now: datetime) -> str:
    """FQ + receipt date + 14 letters (64 random bits): short enough for an SMS, never reused.
    One draw from the system's random source spelled in base 24, not one per letter (the
    draws were a visible share of a single post's cost)."""
    number = secrets.randbelow(_CASE_ID_CHOICES)
    letters = []
    for _ in range(_CASE_ID_LENGTH):
        number, digit = divmod(number, len(_CASE_ID_LETTERS))
        letters.append(_CASE_ID_LETTERS[digit])
    return f"FQ{now:%Y%m%d}-" + "".join(letters)


def content_fingerprint(payload: BaseModel) -> str:
    """Equal for the same report re-sent, different when any field of it changed."""
    canonical = orjson.dumps(payload.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def differing_fields(first: Any, again: Any, path: str = "") -> list[str]:
    """The dotted paths where a report sent again differs from the one received first (both
    as `model_dump(mode="json")`, the form the fingerprint hashes): names only, never values,
    so a 409 can say what changed without repeating a phone number."""
    if isinstance(first, dict) and isinstance(again, dict):
        out = []
        for key in sorted(set(first) | set(again), key=str):
            out += differing_fields(first.get(key), again.get(key),
                                    f"{path}.{key}" if path else str(key))
        return out
    if (isinstance(first, list) and isinstance(again, list) and len(first) == len(again)
            and path):
        out = []
        for index, (a, b) in enumerate(zip(first, again, strict=True)):
            out += differing_fields(a, b, f"{path}.{index}")
        return out
    return [] if first == again else [path or "<body>"]


@dataclass(frozen=True)
class Receipt:
    """What intake adds to a native payload when it receives it."""

    case_id: str
    external_id: str
    received_at: datetime  # when intake received it (aware)
    hash_secret: str


# --- people: masked numbers and keyed hashes, never the numbers -----------------------------

def person_ref(secret: str, *, role: PartyRole, name: str | None = None,
               phone: str | None = None, id_number: str | None = None,
               address: str | None = None) -> PartyRef:
    return PartyRef(
        name=name, role=role,
        phone_masked=mask_phone(phone) if phone else None,
        phone_hash=keyed_hash(secret, "phone", phone) if phone else None,
        id_number_masked=mask_id_number(id_number) if id_number else None,
        id_number_hash=keyed_hash(secret, "id", id_number) if id_number else None,
        address=scrub(address) if address else None)


def party_refs(parties: Sequence[Party], default_role: PartyRole, secret: str) -> list[PartyRef]:
    """The parties as events carry them; a party without a role gets its list's role."""
    return [person_ref(secret, role=p.role or default_role, name=p.name, phone=p.phone,
                       id_number=p.id_number, address=p.address) for p in parties]


def _text(value: str | None) -> str | None:
    return scrub(value) if value else None


# The channel fields that are the source's own ids and codes: kept as sent, like external_id
# (which they repeat) and the codes CaseReported carries. Masking would mangle some: a grid
# code has the shape of a first-generation id number. Every other text is masked, a grid
# worker's staff id included (a source may well put a phone number there).
SOURCE_CODES = frozenset({"order_no", "report_id", "incident_no", "case_no", "petition_no",
                          "visit_id", "grid_code", "region_code", "court_code", "station_code"})


def _source_code(name: str) -> bool:
    return name in SOURCE_CODES


def channel_fields(**values: Any) -> dict[str, Any]:
    """A channel's own fields as CaseReported carries them: the ones given, times as ISO 8601,
    free text masked of numbers (ids and codes as sent)."""
    fields: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or value == "":
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, StrEnum):
            value = value.value
        elif isinstance(value, str) and not _source_code(name):
            value = scrub(value)
        fields[name] = value
    return fields


def _masked_party(party: PartyRef) -> PartyRef:
    return party.model_copy(update={"name": _text(party.name), "address": _text(party.address)})


def masked_case(case: CaseReported) -> CaseReported:
    """Every free-text field of a case scrubbed, whichever channel's mapping built it: the
    last step before a case leaves intake, so a new mapping cannot forget one. Ids, codes
    and the callback address are the sources' own and stay as they are."""
    return case.model_copy(update={
        "text": scrub(case.text), "channel_category": _text(case.channel_category),
        "address": _text(case.address),
        "reporter": _masked_party(case.reporter) if case.reporter else None,
        "parties": [_masked_party(p) for p in case.parties],
        "channel_fields": channel_fields(**case.channel_fields)})


# --- one mapping per channel ----------------------------------------------------------------

def hotline_to_case(order: HotlineWorkOrder, receipt: Receipt) -> CaseReported:
    reporter = None
    if order.caller_name or order.caller_phone:
        reporter = person_ref(receipt.hash_secret, role=PartyRole.REPORTER,
                              name=order.caller_name, phone=order.caller_phone)
    return CaseReported(
        case_id=receipt.case_id, channel=Channel.HOTLINE_12345, external_id=order.order_no,
        received_at=order.received_at, text=scrub(order.content),
        channel_category=order.category, urgency=order.urgency,
        address=_text(order.address), region_code=order.region_code, reporter=reporter,
        deadline=order.deadline,
        callback_url=str(order.callback_url) if order.callback_url else None,
        channel_fields=channel_fields(order_no=order.order_no, category=order.category,
                                      urgency=order.urgency, deadline=order.deadline,
                                      region_code=order.region_code))


def grid_to_case(report: GridReport, receipt: Receipt) -> CaseReported:
    # The reporter is the grid worker: a staff id, not a citizen's number, so no hashes.
    reporter = (PartyRef(name=report.reporter_name, role=PartyRole.REPORTER)
                if report.reporter_name else None)
    return CaseReported(
        case_id=receipt.case_id, channel=Channel.GRID, external_id=report.report_id,
        received_at=receipt.received_at, text=scrub(report.description),
        channel_category=report.event_type, address=_text(report.address),
        grid_code=report.grid_code, location=report.location, occurred_at=report.occurred_at,
        people_count=report.people_involved, reporter=reporter,
        parties=party_refs(report.parties, PartyRole.OTHER, receipt.hash_secret),
        photos=[str(url) for url in report.photos],
        channel_fields=channel_fields(report_id=report.report_id, grid_code=report.grid_code,
                                      event_type=report.event_type,
                                      reporter_id=report.reporter_id,
                                      occurred_at=report.occurred_at,
                                      people_involved=report.people_involved))


def police_to_case(referral: PoliceReferral, receipt: Receipt) -> CaseReported:
    reporter = (PartyRef(name=referral.officer_name, role=PartyRole.REPORTER)
                if referral.officer_name else None)
    return CaseReported(
        case_id=receipt.case_id, channel=Channel.POLICE, external_id=referral.incident_no,
        received_at=receipt.received_at, text=scrub(referral.summary),
        channel_category=referral.dispute_type, address=_text(referral.address),
        region_code=referral.region_code, station_code=referral.station_code,
        occurred_at=referral.occurred_at, injuries=referral.injuries, reporter=reporter,
        parties=party_refs(referral.parties, PartyRole.OTHER, receipt.hash_secret),
        channel_fields=channel_fields(incident_no=referral.incident_no,
                                      station_code=referral.station_code,
                                      station_name=referral.station_name,
                                      dispute_type=referral.dispute_type,
                                      occurred_at=referral.occurred_at,
                                      injuries=referral.injuries))


def court_mediation_deadline(referral: CourtReferral, received_at: datetime) -> datetime:
    """The referral's own deadline, else 30 days from referral (or from receipt)."""
    if referral.mediation_deadline is not None:
        return referral.mediation_deadline
    return (referral.referred_at or received_at) + COURT_MEDIATION_PERIOD


def court_to_case(referral: CourtReferral, receipt: Receipt) -> CaseReported:
    received_at = referral.referred_at or receipt.received_at
    secret = receipt.hash_secret
    deadline = court_mediation_deadline(referral, received_at)
    return CaseReported(
        case_id=receipt.case_id, channel=Channel.COURT, external_id=referral.case_no,
        received_at=received_at, text=scrub(referral.summary),
        channel_category=referral.cause, court_code=referral.court_code,
        amount=referral.claim_amount,
        parties=party_refs(referral.plaintiffs, PartyRole.PLAINTIFF, secret)
        + party_refs(referral.defendants, PartyRole.DEFENDANT, secret),
        deadline=deadline,
        channel_fields=channel_fields(case_no=referral.case_no, court_code=referral.court_code,
                                      court_name=referral.court_name, cause=referral.cause,
                                      claim_amount=referral.claim_amount,
                                      referred_at=referral.referred_at,
                                      # the court's own, else the 30 days' default
                                      mediation_deadline=deadline))


def petition_to_case(referral: PetitionReferral, receipt: Receipt) -> CaseReported:
    # A joint petition (联名) names its petitioners; their number is the head count when
    # the petition system does not state one.
    people = referral.people_count
    if people is None and referral.petitioners:
        people = len(referral.petitioners)
    return CaseReported(
        case_id=receipt.case_id, channel=Channel.PETITION, external_id=referral.petition_no,
        received_at=receipt.received_at, text=scrub(referral.content),
        region_code=referral.region_code, people_count=people,
        parties=party_refs(referral.petitioners, PartyRole.PETITIONER, receipt.hash_secret),
        channel_fields=channel_fields(petition_no=referral.petition_no,
                                      people_count=referral.people_count,
                                      region_code=referral.region_code))


def walk_in_to_case(visit: WalkInVisit, receipt: Receipt) -> CaseReported:
    secret = receipt.hash_secret
    reporter = None
    if visit.visitor is not None:
        v = visit.visitor
        reporter = person_ref(secret, role=v.role or PartyRole.REPORTER, name=v.name,
                              phone=v.phone, id_number=v.id_number, address=v.address)
    return CaseReported(
        case_id=receipt.case_id, channel=Channel.WALK_IN, external_id=receipt.external_id,
        received_at=visit.visited_at or receipt.received_at, text=scrub(visit.content),
        channel_category=visit.category, urgency=visit.urgency, address=_text(visit.address),
        region_code=visit.region_code, grid_code=visit.grid_code,
        people_count=visit.people_count, reporter=reporter,
        parties=party_refs(visit.parties, PartyRole.OTHER, secret),
        channel_fields=channel_fields(visit_id=receipt.external_id, category=visit.category,
                                      urgency=visit.urgency, visited_at=visit.visited_at,
                                      region_code=visit.region_code,
                                      grid_code=visit.grid_code))


@dataclass(frozen=True)
class ChannelAdapter(Generic[NativeT]):
    """How one channel's native payload becomes a case."""

    channel: Channel
    native: type[NativeT]
    external_id_field: str
    map_to_case: Callable[[NativeT, Receipt], CaseReported]
    # True when the source has no id of its own: intake makes one (the case id) unless the
    # payload carries the optional external_id_field.
    generates_ids: bool = False

    def external_id(self, payload: BaseModel) -> str | None:
        value = getattr(payload, self.external_id_field, None)
        return str(value) if value else None

    def to_case(self, payload: BaseModel, receipt: Receipt) -> CaseReported:
        if not isinstance(payload, self.native):
            raise TypeError(f"{self.channel} takes {self.native.__name__}, "
                            f"not {type(payload).__name__}")
        return masked_case(self.map_to_case(payload, receipt))


# The channels that post to POST /v1/intake/{channel} and publish to intake.<channel>.v1.
# Open311 has its own routes (services/intake/open311).
ADAPTERS: dict[Channel, ChannelAdapter[Any]] = {a.channel: a for a in (
    ChannelAdapter(Channel.HOTLINE_12345, HotlineWorkOrder, "order_no", hotline_to_case),
    ChannelAdapter(Channel.GRID, GridReport, "report_id", grid_to_case),
    ChannelAdapter(Channel.POLICE, PoliceReferral, "incident_no", police_to_case),
    ChannelAdapter(Channel.COURT, CourtReferral, "case_no", court_to_case),
    ChannelAdapter(Channel.PETITION, PetitionReferral, "petition_no", petition_to_case),
    ChannelAdapter(Channel.WALK_IN, WalkInVisit, "visit_id", walk_in_to_case,
                   generates_ids=True),
)}


# --- exactly once per channel and external id -----------------------------------------------

class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class Submission:
    outcome: Outcome
    case_id: str


@dataclass(frozen=True)
class Prepared:
    """A validated report, ready to store: its case, if it turns out to be new."""

    external_id: str
    fingerprint: str
    case: CaseReported
    native: dict[str, Any]

    @property
    def case_id(self) -> str:
        return self.case.case_id


@dataclass(frozen=True)
class Stored:
    """What intake already holds for a channel's external id."""

    case_id: str
    fingerprint: str


def prepare(adapter: ChannelAdapter[Any], payload: BaseModel, now: datetime,
            hash_secret: str, integration_key_id: str | None = None) -> Prepared:
    """`integration_key_id`: the API key that posted it, stamped on the case (notify sends a
    12345 order without callback_url to that key's registered endpoint); not part of the
    content, so the same order from another key is still a duplicate."""
    case_id = new_case_id(now)
    external_id = adapter.external_id(payload) or case_id
    receipt = Receipt(case_id=case_id, external_id=external_id, received_at=now,
                      hash_secret=hash_secret)
    case = adapter.to_case(payload, receipt)
    if integration_key_id is not None:
        case = case.model_copy(update={"integration_key_id": integration_key_id})
    return Prepared(external_id=external_id, fingerprint=content_fingerprint(payload),
                    case=case, native=payload.model_dump(mode="json"))


def firsts(reports: Sequence[Prepared]) -> list[Prepared]:
    """The first report of each external id, in external id order: those worth inserting.
    (Inserting in one global order keeps concurrent batches from deadlocking.)"""
    seen: dict[str, Prepared] = {}
    for report in reports:
        seen.setdefault(report.external_id, report)
    return [seen[key] for key in sorted(seen)]


def settle(reports: Sequence[Prepared], inserted: set[str],
           stored: dict[str, Stored]) -> list[Submission]:
    """Each report's outcome, once the firsts were inserted where their id was free.

    `inserted` holds the case ids inserted just now; `stored` what intake holds for every
    external id after the insert. A later report of an id (in the same batch or sent
    again) is a duplicate when its content equals the stored one, else a conflict.
    """
    outcomes = []
    for report in reports:
        if report.case_id in inserted:
            outcomes.append(Submission(Outcome.ACCEPTED, report.case_id))
            continue
        held = stored[report.external_id]
        same = held.fingerprint == report.fingerprint
        outcomes.append(Submission(Outcome.DUPLICATE if same else Outcome.CONFLICT,
                                   held.case_id))
    return outcomes


def contact_phone(channel: str, native: dict[str, Any]) -> str | None:
    """The reporting citizen's phone in a stored native payload, for the SMS that tells them
    their case number and outcome. Grid, police and court reports are filed by staff, so
    they name no citizen to text."""
    if channel == Channel.HOTLINE_12345:
        return native.get("caller_phone")
    if channel == Channel.OPEN311:
        return native.get("phone")
    if channel == Channel.WALK_IN:
        return (native.get("visitor") or {}).get("phone")
    if channel == Channel.PETITION:
        return next((p["phone"] for p in native.get("petitioners") or [] if p.get("phone")),
                    None)
    return None


@dataclass(frozen=True)
class Person:
    """A person of a stored report with their numbers in clear, named as the case view names
    them: `reporter`, or `parties.N` in the order the event lists the parties."""

    ref: str
    name: str | None
    role: PartyRole
    phone: str | None
    id_number: str | None


def _party(ref: str, party: dict[str, Any], default_role: PartyRole) -> Person:
    return Person(ref, party.get("name"), PartyRole(party.get("role") or default_role),
                  party.get("phone"), party.get("id_number"))


def people_in(channel: str, native: dict[str, Any]) -> list[Person]:
    """Everyone a stored native payload names, in the order its CaseReported lists them (the
    mappings above): the reporter first, then the parties."""
    reporter: Person | None = None
    parties: list[tuple[dict[str, Any], PartyRole]] = []
    if channel == Channel.HOTLINE_12345:
        if native.get("caller_name") or native.get("caller_phone"):
            reporter = Person("reporter", native.get("caller_name"), PartyRole.REPORTER,
                              native.get("caller_phone"), None)
    elif channel == Channel.WALK_IN:
        if native.get("visitor"):
            reporter = _party("reporter", native["visitor"], PartyRole.REPORTER)
    elif channel == Channel.OPEN311:
        from services.intake.open311.domain import full_name  # it imports this module

        name = full_name(native.get("first_name"), native.get("last_name"))
        if name or native.get("phone"):
            reporter = Person("reporter", name, PartyRole.REPORTER, native.get("phone"), None)
    # Grid workers and police officers report as staff: a name, no number of theirs.
    if channel == Channel.COURT:
        parties = ([(p, PartyRole.PLAINTIFF) for p in native.get("plaintiffs") or []]
                   + [(p, PartyRole.DEFENDANT) for p in native.get("defendants") or []])
    elif channel == Channel.PETITION:
        parties = [(p, PartyRole.PETITIONER) for p in native.get("petitioners") or []]
    elif channel in (Channel.GRID, Channel.POLICE, Channel.WALK_IN):
        parties = [(p, PartyRole.OTHER) for p in native.get("parties") or []]
    people = [reporter] if reporter else []
    return people + [_party(f"parties.{i}", p, role) for i, (p, role) in enumerate(parties)]
