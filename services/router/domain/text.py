"""Reading Chinese report text: normalisation, fast term matching and word boundaries.

The router meets thousands of reports a second, so term lists are matched by one pass over
the text with an index of the terms' first two characters (every occurrence of every term,
overlaps included), not by segmenting every report; every list's patterns and every
intent's acts (扬言要砍死他) are found by one more regex search. jieba is asked only when a
matched term is listed as one that must stand as a whole word (学生 is not a student in
医学生), and only once per text.
"""

from __future__ import annotations

import importlib
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
    literal: bool = True   # a listed term, not a pattern's match


@dataclass(frozen=True)
class Intent:
    """Acts that count only when said as an intent (扬言要砍死他, 就把汽油泼了).

    An act counts when a marker stands at most `window` characters before it in the same
    sentence, and no negator stands between the nearest such marker and the act, nor just
    before that marker (不会去砍他, 没说要砍人).
    """

    markers: tuple[str, ...]
    acts: tuple[str, ...]
    window: int = 16
    negators: tuple[str, ...] = ()


@dataclass(frozen=True)
class WordList:
    """A named list to look for: literal terms with weights, regular expressions, exceptions.

    `exceptions` are phrases inside which a hit does not count (跳楼价 is a price, not a
    threat; 无人受伤 is no injury); `whole_words` must stand as words of their own; `intent`
    holds acts that count only when said as an intent.
    """

    name: str
    terms: Mapping[str, int]
    patterns: tuple[tuple[str, int], ...] = ()
    exceptions: tuple[str, ...] = ()
    whole_words: frozenset[str] = frozenset()
    intent: Intent | None = None


_SENTENCE_END = re.compile(r"[。！？；!?;\n]")


class _CompiledIntent(NamedTuple):
    name: str
    acts: re.Pattern[str]   # searched as part of the Lexicon's one pattern scan
    markers: re.Pattern[str]
    negators: re.Pattern[str] | None
    negated_marker: re.Pattern[str] | None   # a negator right before the marker: 不会, 没说
    window: int

    def said(self, text: str, act: re.Match[str]) -> Hit | None:
        """The act with the marker that makes it an intent, or None if nothing does."""
        start = act.start()
        lo = max(0, start - self.window)
        ends = [end.end() for end in _SENTENCE_END.finditer(text, lo, start)]
        if ends:
            lo = ends[-1]
        markers = list(self.markers.finditer(text, lo, start))
        if not markers:
            return None
        marker = markers[-1]   # the nearest before the act
        if self.negators is not None and self.negated_marker is not None and (
                self.negators.search(text, marker.end(), start)
                or self.negated_marker.search(text, max(0, marker.start() - 3),
                                              marker.start())):
            return None
        return Hit(text[marker.start():act.end()], marker.start(), act.end(), 1, False)


class Lexicon:
    """Many word lists compiled for one pass over a text."""

    def __init__(self, lists: Iterable[WordList]) -> None:
        by_first: dict[str, dict[str, list[tuple[str, int]]]] = {}
        self._patterns: list[tuple[str, re.Pattern[str], tuple[re.Pattern[str], ...],
                                   tuple[int, ...]]] = []
        self._intents: list[_CompiledIntent] = []
        self._exceptions: dict[str, re.Pattern[str]] = {}
        self._whole_words: dict[str, frozenset[str]] = {}
        for word_list in lists:
            for term, weight in word_list.terms.items():
                if term:
                    owners = by_first.setdefault(term[0], {}).setdefault(term, [])
                    owners.append((word_list.name, weight))
            if word_list.patterns:
                # One alternation per list, without groups: a group around each branch would
                # stop the regex engine from skipping ahead to the branches' first characters
                # (several times slower). A match's weight is that of the first branch that
                # matches where it starts, found only when the weights differ.
                joined = "|".join(f"(?:{regex})" for regex, _ in word_list.patterns)
                weights = tuple(weight for _, weight in word_list.patterns)
                alternatives = tuple(re.compile(regex) for regex, _ in word_list.patterns)
                self._patterns.append((word_list.name, re.compile(joined), alternatives,
                                       weights))
            if word_list.intent is not None:
                intent = word_list.intent
                self._intents.append(_CompiledIntent(
                    word_list.name,
                    re.compile("|".join(f"(?:{act})" for act in intent.acts)),
                    re.compile("|".join(sorted(map(re.escape, intent.markers), key=len,
                                               reverse=True))),
                    re.compile("|".join(map(re.escape, intent.negators)))
                    if intent.negators else None,
                    re.compile("(?:" + "|".join(map(re.escape, intent.negators)) + r")$")
                    if intent.negators else None,
                    intent.window))
            if word_list.exceptions:
                self._exceptions[word_list.name] = _scanner(
                    "|".join(f"(?:{regex})" for regex in word_list.exceptions))
            if word_list.whole_words:
                self._whole_words[word_list.name] = word_list.whole_words
        self._any_whole_word = frozenset().union(*self._whole_words.values())
        # Indexed by a term's first two characters (one for one-character terms), longest
        # first, so a reader of the index sees 拖欠工资 before 拖欠, and a position is tried
        # only against the few terms that share its first two characters.
        by_head: dict[str, list[tuple[str, int, tuple[tuple[str, int], ...]]]] = {}
        for terms in by_first.values():
            for term, owners in terms.items():
                by_head.setdefault(term[:2], []).append((term, len(term), tuple(owners)))
        self._index: dict[str, tuple[tuple[str, int, tuple[tuple[str, int], ...]], ...]] = {
            head: tuple(sorted(entries, key=lambda item: -item[1]))
            for head, entries in by_head.items()
        }
        self._first_chars = frozenset(by_first)
        # Every list's patterns and every intent's acts in one alternation, so that a text
        # is scanned once for all of them; where it matches, each list's own alternation
        # says whether (and how far) that list matches there.
        scanned = [pattern.pattern for _, pattern, _, _ in self._patterns]
        scanned += [intent.acts.pattern for intent in self._intents]
        self._scan = _scanner("|".join(f"(?:{regex})" for regex in scanned)) if scanned \
            else None

    def find(self, text: str) -> dict[str, list[Hit]]:
        """Every hit of every list in normalised text, by list name, in text order."""
        hits: dict[str, list[Hit]] = {}
        index = self._index
        first_chars = self._first_chars
        whole_words = self._any_whole_word
        needs_words = False
        for position, char in enumerate(text):
            if char not in first_chars:
                continue
            head = text[position:position + 2]
            for candidates in (index.get(head), index.get(char) if len(head) == 2 else None):
                if candidates is None:
                    continue
                for term, size, owners in candidates:
                    if size > 2 and not text.startswith(term, position):
                        continue
                    needs_words = needs_words or term in whole_words
                    for name, weight in owners:
                        # tuple.__new__ skips NamedTuple's Python-level __new__: this is
                        # the innermost loop of routing.
                        hit = _new_hit(Hit, (term, position, position + size, weight, True))
                        found = hits.get(name)
                        if found is None:
                            hits[name] = [hit]
                        else:
                            found.append(hit)
        if self._scan is not None:
            self._find_patterns(text, hits)
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

    def _find_patterns(self, text: str, hits: dict[str, list[Hit]]) -> None:
        """Every list's pattern matches and said intents, added to `hits` in text order."""
        assert self._scan is not None
        found: dict[str, list[Hit]] = {}
        ends: dict[int, int] = {}   # per list (by position in the scan): like finditer,
        position = 0                # a list's matches do not overlap one another
        while (match := self._scan.search(text, position)) is not None:
            start = match.start()
            entry = 0
            for name, pattern, alternatives, weights in self._patterns:
                if ends.get(entry, 0) <= start:
                    own = pattern.match(text, start)
                    if own is not None:
                        ends[entry] = own.end()
                        found.setdefault(name, []).append(
                            Hit(own.group(), start, own.end(),
                                _weight_of(own, alternatives, weights), False))
                entry += 1
            for intent in self._intents:
                if ends.get(entry, 0) <= start:
                    act = intent.acts.match(text, start)
                    if act is not None:
                        ends[entry] = act.end()
                        said = intent.said(text, act)
                        if said is not None:
                            found.setdefault(intent.name, []).append(said)
                entry += 1
            position = start + 1
        for name, matched in found.items():
            merged = hits.get(name, []) + matched
            merged.sort(key=lambda hit: hit.start)
            hits[name] = merged


def _scanner(regex: str) -> re.Pattern[str]:
    """`regex`, led by a look-ahead for the characters a match can start with, if known.

    Python's regex engine tries every branch of a long alternation at every position of the
    text; the look-ahead turns away most positions with one character test (about 7 times
    faster for the rules' patterns).
    """
    first = _first_characters(regex)
    if not first:
        return re.compile(regex)
    return re.compile("(?=[" + "".join(re.escape(char) for char in sorted(first)) + "])(?:"
                      + regex + ")")


def _first_characters(regex: str) -> frozenset[str] | None:
    """The characters a match of `regex` can start with; None when that is not known."""
    try:
        parser: Any = importlib.import_module("re._parser")
        codes: Any = importlib.import_module("re._constants")
        parsed = parser.parse(regex)
    except (ImportError, AttributeError, re.error, RecursionError):
        return None   # another Python's internals: do without the look-ahead
    found = _first_of(list(parsed), codes)
    if found is None or found[1]:
        return None
    return frozenset(found[0])


def _first_of(items: list[Any], codes: Any) -> tuple[set[str], bool] | None:
    """(first characters, whether the items can match nothing) of parsed regex items."""
    chars: set[str] = set()
    for op, av in items:
        if op is codes.LITERAL:
            chars.add(chr(av))
            return chars, False
        if op is codes.IN:
            for item_op, item in av:
                if item_op is codes.LITERAL:
                    chars.add(chr(item))
                elif item_op is codes.RANGE and item[1] - item[0] <= 256:
                    chars.update(map(chr, range(item[0], item[1] + 1)))
                else:  # a negated set, a category such as \d: anything may come first
                    return None
            return chars, False
        if op is codes.BRANCH:
            can_be_empty = False
            for alternative in av[1]:
                found = _first_of(list(alternative), codes)
                if found is None:
                    return None
                chars |= found[0]
                can_be_empty = can_be_empty or found[1]
            if not can_be_empty:
                return chars, False
        elif op is codes.SUBPATTERN or op in (codes.MAX_REPEAT, codes.MIN_REPEAT):
            body = av[3] if op is codes.SUBPATTERN else av[2]
            found = _first_of(list(body), codes)
            if found is None:
                return None
            chars |= found[0]
            if not found[1] and (op is codes.SUBPATTERN or av[0] > 0):
                return chars, False
        else:
            return None
    return chars, True


_new_hit = tuple.__new__


def _weight_of(match: re.Match[str], alternatives: tuple[re.Pattern[str], ...],
               weights: tuple[int, ...]) -> int:
    """The weight of the alternation's branch that matched: the first matching there."""
    if len(set(weights)) == 1:
        return weights[0]
    for alternative, weight in zip(alternatives, weights, strict=True):
        found = alternative.match(match.string, match.start())
        if found is not None and found.end() == match.end():
            return weight
    return weights[0]


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
