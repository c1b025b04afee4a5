"""Who sees what of a case's report: "a department sees what it needs, no more".

The stored report is the CaseReported event as intake sent it (numbers already masked).
A key sees a case at all by the rules of store.visible_to; of a case it sees, this module
decides field by field (docs/mediation.md, "Who sees what in a case"):

| audience | who | parties' masked numbers and addresses | photos |
|---|---|---|---|
| full | keys without limits (admin, the centre's own systems) | shown | shown |
| lead | keys limited to departments, one of which leads the case | shown | shown |
| cooperating | keys limited to departments that only cooperate | withheld | shown |
| overview | keys limited to jurisdictions or channels only (leaders, dispatchers, clerks) | shown | withheld |

Everyone who sees the case sees its text, the place, the channel's fields and the parties'
names and roles: nobody can work or supervise a case without them. Photos (faces, homes)
are for the departments that go there; a cooperating department contacts the parties
through the lead department, so it is not shown even their masked numbers or addresses.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from contracts.api_mediation import CaseReport, PartyView
from kit.auth import Principal, Scope


class Audience(StrEnum):
    FULL = "full"
    LEAD = "lead"
    COOPERATING = "cooperating"
    OVERVIEW = "overview"


PARTY_DETAILS = ("phone_masked", "id_number_masked", "address")


def audience(principal: Principal, lead_department: str | None) -> Audience:
    if principal.departments:
        return Audience.LEAD if lead_department in principal.departments else Audience.COOPERATING
    if principal.jurisdictions or principal.channels:
        return Audience.OVERVIEW
    return Audience.FULL


def withheld(who: Audience) -> list[str]:
    if who is Audience.COOPERATING:
        return [f"parties.{name}" for name in PARTY_DETAILS]
    if who is Audience.OVERVIEW:
        return ["photos"]
    return []


def _party(person: str, party: dict[str, Any], who: Audience) -> PartyView:
    details = who is not Audience.COOPERATING
    return PartyView(
        person=person, name=party.get("name"), role=party.get("role") or "other",
        **{name: party.get(name) if details else None for name in PARTY_DETAILS})


def case_report(report: dict[str, Any] | None, who: Audience) -> CaseReport:
    """The report for `who`. `report` may be missing (a routing decision that overtook its
    report), from before photos and channel fields were carried, or erased (its personal
    fields emptied): each of those shows what there is."""
    report = report or {}
    reporter = report.get("reporter")
    location = report.get("location")
    return CaseReport(
        reporter=_party("reporter", reporter, who) if reporter else None,
        parties=[_party(f"parties.{i}", p, who)
                 for i, p in enumerate(report.get("parties") or [])],
        address=report.get("address"),
        location=location if location and location.get("lat") is not None else None,
        region_code=report.get("region_code"), grid_code=report.get("grid_code"),
        occurred_at=report.get("occurred_at"), channel_category=report.get("channel_category"),
        urgency=report.get("urgency"), deadline=report.get("deadline"),
        amount=report.get("amount"), people_count=report.get("people_count"),
        injuries=report.get("injuries"),
        photos=[] if who is Audience.OVERVIEW else list(report.get("photos") or []),
        channel_fields=report.get("channel_fields") or {},
        withheld=withheld(who))


def revealable(principal: Principal, who: Audience, report: dict[str, Any] | None,
               erased: bool) -> bool:
    """Whether intake would show this key the case's numbers in clear, and there are any:
    the same rule as services/intake/reveal.py (which asks mediation for the lead
    department), stated here for the workbench's 显示号码 button."""
    if erased or who is Audience.COOPERATING or not principal.allows(Scope.PERSONAL_DATA_REVEAL):
        return False
    people = [(report or {}).get("reporter") or {}, *((report or {}).get("parties") or [])]
    return any(p.get("phone_masked") or p.get("id_number_masked") for p in people)
