"""Reading Chinese report text: normalisation, fast term matching and word boundaries.

The router meets thousands of reports a second, so term lists are matched by one pass over
the text with a first-character index (every occurrence of every term, overlaps included),
not by segmenting every report. jieba is asked only when a matched term is listed as one
that must stand as a whole word (学生 is not a student in 医学生), and only once per text.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, NamedTuple

# U+FF01..U+FF5E are the full-width forms of ASCII '!'..'~'; U+3000 is the ideographic space.
_HALF_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


@cache
def _traditional_to_simplified() -> Any:
    # OpenCC loads its dictionaries on construction; one converter serves every report.
    from opencc import OpenCC

    return OpenCC("t2s")


def normalise(text: str) -> str:
    """Half-width ASCII, simplified characters, no whitespace, no thousands separators."""
    text = "".join(text.translate(_HALF_WIDTH).split())
    text = _traditional_to_simplified().convert(text)
    if "," in text:
        text = _THOUSANDS_COMMA.sub("", text)
    return text


class Hit(NamedTuple):
    """One occurrence of a listed term (or a pattern's match) in normalised text."""

    term: str
    start: int
    end: int
    weight: int


@dataclass(frozen=True)
class WordList:
    """A named list to look for: literal terms with weights, regular expressions, exceptions.

    `exceptions` are phrases inside which a hit does not count (跳楼价 is a price, not a
    threat; 无人受伤 is no injury); `whole_words` must stand as words of their own.
    """

    name: str
    terms: Mapping[str, int]
    patterns: tuple[tuple[str, int], ...] = ()
    exceptions: tuple[str, ...] = ()
    whole_words: frozenset[str] = frozenset()


class Lexicon:
    """Many word lists compiled for one pass over a text."""

    def __init__(self, lists: Iterable[WordList]) -> None:
        by_first: dict[str, dict[str, list[tuple[str, int]]]] = {}
        self._patterns: list[tuple[str, re.Pattern[str], tuple[int, ...]]] = []
        self._exceptions: dict[str, re.Pattern[str]] = {}
        self._whole_words: dict[str, frozenset[str]] = {}
        for word_list in lists:
            for term, weight in word_list.terms.items():
                if term:
                    owners = by_first.setdefault(term[0], {}).setdefault(term, [])
                    owners.append((word_list.name, weight))
            if word_list.patterns:
                # One alternation per list; the group that matched tells the pattern's weight.
                joined = "|".join(f"(?P<p{i}>{regex})" for i, (regex, _) in
                                  enumerate(word_list.patterns))
                weights = tuple(weight for _, weight in word_list.patterns)
                self._patterns.append((word_list.name, re.compile(joined), weights))
            if word_list.exceptions:
                self._exceptions[word_list.name] = re.compile("|".join(word_list.exceptions))
            if word_list.whole_words:
                self._whole_words[word_list.name] = word_list.whole_words
        self._any_whole_word = frozenset().union(*self._whole_words.values())
        # Longest first, so a reader of the index sees 拖欠工资 before 拖欠.
        self._index: dict[str, tuple[tuple[str, int, tuple[tuple[str, int], ...]], ...]] = {
            first: tuple(sorted(((term, len(term), tuple(owners))
                                 for term, owners in terms.items()),
                                key=lambda item: -item[1]))
            for first, terms in by_first.items()
        }

    def find(self, text: str) -> dict[str, list[Hit]]:
        """Every hit of every list in normalised text, by list name, in text order."""
        hits: dict[str, list[Hit]] = {}
        index = self._index
        whole_words = self._any_whole_word
        needs_words = False
        for position, char in enumerate(text):
            candidates = index.get(char)
            if candidates is None:
                continue
            for term, size, owners in candidates:
                if text.startswith(term, position):
                    needs_words = needs_words or term in whole_words
                    for name, weight in owners:
                        # tuple.__new__ skips NamedTuple's Python-level __new__: this is the
                        # innermost loop of routing.
                        hit = _new_hit(Hit, (term, position, position + size, weight))
                        found = hits.get(name)
                        if found is None:
                            hits[name] = [hit]
                        else:
                            found.append(hit)
        for name, pattern, weights in self._patterns:
            matched = [Hit(match.group(), match.start(), match.end(),
                           weights[int((match.lastgroup or "p0")[1:])])
                       for match in pattern.finditer(text)]
            if matched:
                merged = hits.get(name, []) + matched
                merged.sort(key=lambda hit: hit.start)
                hits[name] = merged
        for name, exceptions in self._exceptions.items():
            if name in hits:
                spans = [match.span() for match in exceptions.finditer(text)]
                if spans:
                    hits[name] = [hit for hit in hits[name]
                                  if not any(s <= hit.start and hit.end <= e for s, e in spans)]
        if needs_words:
            bounds = word_boundaries(text)
            for name, listed in self._whole_words.items():
                if name in hits:
                    hits[name] = [hit for hit in hits[name] if hit.term not in listed
                                  or (hit.start in bounds and hit.end in bounds)]
        return {name: found for name, found in hits.items() if found}


_new_hit = tuple.__new__


def longest_hits(hits: list[Hit]) -> list[Hit]:
    """Drop hits inside a longer hit of the same list: 噪音扰民 counts once, not with 噪音 too."""
    if len(hits) < 2:
        return hits
    kept: list[Hit] = []
    for hit in sorted(hits, key=lambda h: (h.start, -h.end)):
        if kept and hit.end <= kept[-1].end:
            continue
        kept.append(hit)
    return kept


@cache
def _segmenter() -> Any:
    # jieba costs about half a second to load and logs while it does; load it on first need.
    # Its modules carry old regex escapes that warn when first compiled: not our warnings.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", SyntaxWarning)
        import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


@lru_cache(maxsize=4096)
def word_boundaries(text: str) -> frozenset[int]:
    """Offsets in `text` where jieba puts a word boundary (0 and len(text) included)."""
    bounds = {0}
    offset = 0
    for word in _segmenter().cut(text):
        offset += len(word)
        bounds.add(offset)
    return frozenset(bounds)
