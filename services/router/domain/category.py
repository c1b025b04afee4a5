"""Which kind of dispute a report is: the channel's own classification if it maps, else the text."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.enums import Category, Channel
from services.router.domain.reading import Reading
from services.router.domain.rules import RoutingRules
from services.router.domain.text import Hit, longest_hits


@dataclass(frozen=True)
class CategoryVerdict:
    category: Category
    confidence: float
    terms: list[str]
    rule: str           # category.channel, category.text or category.none
    source: str | None  # the channel classification that decided it, if one did


def choose_category(channel: Channel, channel_category: str | None, reading: Reading,
                    rules: RoutingRules) -> CategoryVerdict:
    scores = _scores(reading, _focus(reading.text, rules.scoring.focus_markers))
    if channel_category:
        mapped = rules.channel_category(channel, channel_category)
        if mapped is not None:
            agreeing = scores.get(mapped.value, (0, []))[1]
            return CategoryVerdict(mapped, rules.scoring.channel_confidence,
                                   [channel_category, *agreeing], "category.channel",
                                   channel_category)
    # Ties go to the category listed first in the rules file.
    rank = rules.category_rank
    ranked = sorted(scores.items(), key=lambda item: (-item[1][0], rank.get(item[0], len(rank))))
    if not ranked or ranked[0][1][0] < rules.scoring.min_score:
        return CategoryVerdict(Category.OTHER, rules.scoring.no_terms_confidence, [],
                               "category.none", None)
    best, (top, terms) = ranked[0]
    runner_up = ranked[1][1][0] if len(ranked) > 1 else 0
    # Confidence grows with the evidence for the winner and its lead over the runner-up.
    strength = min(1.0, top / rules.scoring.full_score)
    share = top / (top + runner_up)
    confidence = round(0.3 + 0.6 * strength * share, 2)
    return CategoryVerdict(Category(best), confidence, terms, "category.text", None)


def _focus(text: str, markers: list[str]) -> int | None:
    """Where the caller's main matter starts: after the last focus marker, if any."""
    found = [at + len(marker) for marker in markers if (at := text.rfind(marker)) >= 0]
    return max(found) if found else None


def _scores(reading: Reading, focus: int | None = None) -> dict[str, tuple[int, list[str]]]:
    """Per category: the sum of its distinct terms' weights, and those terms in text order.

    A term after the focus (the caller's main matter, see _focus) counts double.

    A term inside a longer term of another category is part of that word, not a word of its
    own: 物业公司 is property management, not also 公司 (labour); 土地补偿 is not also 土地.
    """
    by_category = reading.category_hits
    if len(by_category) > 1:
        by_category = _without_parts_of_longer_words(by_category)
    scores: dict[str, tuple[int, list[str]]] = {}
    for category, hits in by_category.items():
        weights: dict[str, int] = {}
        for hit in longest_hits(hits) if len(hits) > 1 else hits:
            weight = hit.weight * 2 if focus is not None and hit.start >= focus else hit.weight
            if weights.get(hit.term, 0) < weight:
                weights[hit.term] = weight
        if weights:
            scores[category] = (sum(weights.values()), list(weights))
    return scores


def _without_parts_of_longer_words(by_category: dict[str, list[Hit]]) -> dict[str, list[Hit]]:
    # Only a listed word contains another; a pattern's match (欠...钱) may span several words.
    spans = sorted(((hit.start, hit.end, category, hit.literal)
                    for category, hits in by_category.items() for hit in hits),
                   key=lambda span: (span[0], -span[1]))
    inside: set[tuple[str, int, int]] = set()
    for i, (start, end, category, literal) in enumerate(spans):
        if not literal:
            continue
        for other_start, other_end, other, _ in spans[i + 1:]:
            if other_start >= end:
                break
            if other != category and other_end <= end and other_end - other_start < end - start:
                inside.add((other, other_start, other_end))
    if not inside:
        return by_category
    return {category: [hit for hit in hits if (category, hit.start, hit.end) not in inside]
            for category, hits in by_category.items()}
