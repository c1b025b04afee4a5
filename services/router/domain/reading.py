"""What a report's text says, read once: normalised text, term hits, money, people, ages."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from services.router.domain.numerals import Quantities, read_quantities
from services.router.domain.rules import CATEGORY_LIST, SIGNAL_LIST, RoutingRules
from services.router.domain.text import Hit, longest_hits, normalise

# Readings remembered per rules object. The same text comes again and again (a complaint
# repeated by several callers, a channel's template wording); reading it was the largest
# share of the router's per-case cost (segmentation and lexicon matching). A reading keeps
# about 2 KB, so at most about 20 MB; when full the cache starts afresh.
READINGS_KEPT = 10_000

# Signals the code fills from more than words: ages make a party vulnerable, and a
# channel's `injuries` field overrides what the text says about injuries.
VULNERABLE = "vulnerable"
INJURY = "injury"


@dataclass(frozen=True)
class Reading:
    text: str
    category_hits: dict[str, list[Hit]]   # by category code
    signals: dict[str, list[str]]         # signal name → the words that show it, in text order
    quantities: Quantities


def read(text: str, rules: RoutingRules, *, year: int | None = None) -> Reading:
    """Read a report's text; `year` (of receipt) turns a year of birth into an age.
    The answer may be shared with other reports of the same text: never change it."""
    key = (text, year)
    known: Reading | None = rules.readings.get(key)
    if known is None:
        if len(rules.readings) >= READINGS_KEPT:
            rules.readings.clear()
        known = rules.readings[key] = _read(text, rules, year)
    return known


def _read(text: str, rules: RoutingRules, year: int | None) -> Reading:
    normalised = rules.respell(normalise(text))
    hits = rules.lexicon.find(normalised)
    category_hits: dict[str, list[Hit]] = {}
    signals: dict[str, list[str]] = {}
    # What a threat says someone will do is not what happened: no category term and no
    # other signal counts inside it.
    aside_names = {SIGNAL_LIST + name for name in rules.text.aside_signals}
    aside = [(hit.start, hit.end) for name in aside_names for hit in hits.get(name, ())]
    for name, found in hits.items():
        if aside and name not in aside_names:
            found = [hit for hit in found
                     if not any(start <= hit.start and hit.end <= end for start, end in aside)]
            if not found:
                continue
        if name.startswith(CATEGORY_LIST):
            category_hits[name.removeprefix(CATEGORY_LIST)] = found
        elif name.startswith(SIGNAL_LIST):
            signals[name.removeprefix(SIGNAL_LIST)] = _distinct(
                hit.term for hit in longest_hits(found))
    quantities = read_quantities(normalised, rules.text.people_nouns, year)
    limits = rules.text.vulnerable_age
    for age in quantities.ages:
        if age < limits.under or age >= limits.at_least:
            signals.setdefault(VULNERABLE, []).append(f"{age}岁")
    return Reading(normalised, category_hits, signals, quantities)


def _distinct(terms: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(terms))
