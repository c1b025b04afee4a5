"""Measuring a rules file against labelled reports: per-field accuracy, missed and false reds.

A county that edits its rules runs this (scripts/routing_accuracy.py) to see what the edit
did before it ships; the tests hold the default rules to the same bar.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from contracts.enums import Channel, Department, Risk
from contracts.events import CaseReported, RoutingDecision
from services.router.domain.jurisdictions import JurisdictionTree
from services.router.domain.policy import route_case
from services.router.domain.rules import RoutingRules

FIELDS = ("category", "risk", "tier", "lead_department")
# The examples file names the channel's own classification after the channel's field.
_CHANNEL_CATEGORY_KEYS = ("channel_category", "hotline_category", "event_type", "dispute_type",
                          "cause")
_RECEIVED_AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class LabelledReport:
    id: str
    report: CaseReported
    prior_related: int
    expect: Mapping[str, Any]
    part: str = "tuning"   # tuning: written with the rules; holdout: written after them


@dataclass
class Outcome:
    labelled: LabelledReport
    decision: RoutingDecision

    def got(self, name: str) -> str:
        if name == "cooperating":
            return ",".join(d.value for d in self.decision.cooperating_departments)
        return str(getattr(self.decision, name).value)

    def wanted(self, name: str) -> str:
        value = self.labelled.expect[name]
        return ",".join(value) if isinstance(value, list) else str(value)

    def wrong_fields(self) -> list[str]:
        return [name for name in (*FIELDS, "cooperating") if name in self.labelled.expect
                and self.got(name) != self.wanted(name)]


@dataclass
class Evaluation:
    outcomes: list[Outcome] = field(default_factory=list)

    def accuracy(self, name: str) -> float:
        judged = [o for o in self.outcomes if name in o.labelled.expect]
        if not judged:
            return 1.0
        return sum(o.got(name) == o.wanted(name) for o in judged) / len(judged)

    def correct(self, name: str) -> int:
        return sum(o.got(name) == o.wanted(name) for o in self.outcomes
                   if name in o.labelled.expect)

    def missed_reds(self) -> list[Outcome]:
        return [o for o in self.outcomes
                if o.wanted("risk") == Risk.RED.value and o.got("risk") != Risk.RED.value]

    def false_reds(self) -> list[Outcome]:
        return [o for o in self.outcomes
                if o.got("risk") == Risk.RED.value and o.wanted("risk") != Risk.RED.value]

    def reds(self) -> int:
        return sum(o.wanted("risk") == Risk.RED.value for o in self.outcomes)

    def flagged(self) -> list[Outcome]:
        """Decisions flagged for review (待研判)."""
        return [o for o in self.outcomes if o.decision.review.flagged]

    def confusion(self) -> dict[str, Counter[str]]:
        """Per wanted category, how often each category was decided."""
        table: dict[str, Counter[str]] = {}
        for o in self.outcomes:
            table.setdefault(o.wanted("category"), Counter())[o.got("category")] += 1
        return table

    def wrong(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.wrong_fields()]

    def part(self, name: str) -> Evaluation:
        return Evaluation([o for o in self.outcomes if o.labelled.part == name])


def wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion (sound at 0 and at small counts)."""
    if total == 0:
        return (0.0, 1.0)
    share = successes / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / (
        1 + z * z / total)
    return (max(0.0, centre - half), min(1.0, centre + half))


def load_labelled(path: str | Path) -> list[LabelledReport]:
    """Labelled reports (tests/data/*.yaml): id, input {channel, text, ...}, expect {...}."""
    entries = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return [labelled_report(entry) for entry in entries]


def labelled_report(entry: Mapping[str, Any]) -> LabelledReport:
    given = entry["input"]
    channel_category = next((given[key] for key in _CHANNEL_CATEGORY_KEYS if key in given), None)
    report = CaseReported(
        case_id=str(entry["id"]),
        channel=Channel(given["channel"]),
        external_id=str(entry["id"]),
        received_at=_RECEIVED_AT,
        text=given["text"],
        channel_category=channel_category,
        amount=given.get("amount"),
        people_count=given.get("people"),
        injuries=given.get("injuries"),
    )
    expect = dict(entry["expect"])
    if "cooperating" in expect:
        expect["cooperating"] = [Department(d).value for d in expect["cooperating"]]
    return LabelledReport(str(entry["id"]), report, int(given.get("prior_related", 0)), expect,
                          str(entry.get("set", "tuning")))


def load_corrections(path: str | Path) -> list[LabelledReport]:
    """The router's corrections export (GET /v1/routing/corrections, JSON) as labelled
    reports: each corrected case's text and channel, labelled with its final decision (what
    staff settled on after returns and assignments by hand)."""
    import json  # the export is JSON; the labelled sets are YAML

    items = json.loads(Path(path).read_text(encoding="utf-8"))["items"]
    return [correction_report(item) for item in items]


def correction_report(item: Mapping[str, Any]) -> LabelledReport:
    final = item["final"]
    report = CaseReported(case_id=str(item["case_id"]), channel=Channel(item["channel"]),
                          external_id=str(item["case_id"]), received_at=_RECEIVED_AT,
                          text=item["text"])
    expect = {name: final[name] for name in FIELDS if final.get(name) is not None}
    expect["cooperating"] = [Department(d).value
                             for d in final.get("cooperating_departments") or []]
    return LabelledReport(str(item["case_id"]), report, 0, expect, f"corrected ({item['kind']})")


def evaluate(labelled: Iterable[LabelledReport], rules: RoutingRules,
             tree: JurisdictionTree, *, use_reader: bool = True) -> Evaluation:
    """Route each report; `use_reader=False` measures the rules alone."""
    return Evaluation([Outcome(item, route_case(item.report, rules, tree,
                                                prior_related=item.prior_related,
                                                use_reader=use_reader))
                       for item in labelled])
