"""The routing rules file: its models, and a loader that names every bad entry by its path.

The rules are policy as data (DOMAIN.md "Routing policy"): a county changes word lists,
thresholds, departments and time limits by editing a YAML file with a `version:`, never
the code. Loading is pure and cheap (parse, validate, compile the word lists), so the
service can reload it whenever the file changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from contracts.enums import Category, Channel, Department, Risk, Tier, Urgency
from services.router.domain.datafile import DataFileError, describe, read_yaml, require_mapping
from services.router.domain.facts import Test, test_of
from services.router.domain.text import Intent, Lexicon, WordList, normalise

# How much one term of a category's list counts towards choosing that category.
TERM_WEIGHTS = {"strong": 3, "normal": 2, "weak": 1}
CATEGORY_LIST = "category:"
SIGNAL_LIST = "signal:"
CATEGORY_DEPARTMENT = "category_department"
ANY_CHANNEL = "any"


class RulesError(DataFileError):
    """The rules file cannot be used; `problems` lists every reason, each with its path."""

    what = "routing rules"


def _member_of(enum: type[StrEnum], what: str) -> Callable[[Any], Any]:
    """A validator whose message says what the value should have been, in the domain's words."""
    def check(value: Any) -> Any:
        if isinstance(value, enum):
            return value
        try:
            return enum(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a {what}") from None
    return check


def _term(value: str) -> str:
    normalised = normalise(value)
    if not normalised:
        raise ValueError("a term must not be empty")
    return normalised


def _regex(value: str) -> str:
    try:
        compiled = re.compile(value)
    except re.error as exc:
        raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from None
    if compiled.groupindex:
        raise ValueError(f"{value!r}: named groups are not allowed, use (?:...)")
    if compiled.match(""):
        raise ValueError(f"{value!r} matches the empty string")
    return value


def _cooperating(value: Any) -> Any:
    if value == CATEGORY_DEPARTMENT:
        return value
    return _member_of(Department, f"department (or {CATEGORY_DEPARTMENT!r})")(value)


CategoryCode = Annotated[Category, BeforeValidator(_member_of(Category, "category"))]
DepartmentCode = Annotated[Department, BeforeValidator(_member_of(Department, "department"))]
TierCode = Annotated[Tier, BeforeValidator(_member_of(Tier, "tier"))]
RiskCode = Annotated[Risk, BeforeValidator(_member_of(Risk, "risk level"))]
UrgencyCode = Annotated[Urgency, BeforeValidator(_member_of(Urgency, "urgency"))]
ChannelCode = Annotated[Channel, BeforeValidator(_member_of(Channel, "channel"))]
CooperatingDepartment = Annotated[Department | Literal["category_department"],
                                  BeforeValidator(_cooperating)]
Term = Annotated[str, AfterValidator(_term)]
Regex = Annotated[str, AfterValidator(_regex)]
RuleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")]


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WeightedPattern(_Rules):
    regex: Regex
    weight: int = Field(default=2, ge=1, le=3)


class CategoryTerms(_Rules):
    """Words that point to one category: strong (3), normal (2) and weak (1) evidence."""

    strong: list[Term] = Field(default_factory=list)
    normal: list[Term] = Field(default_factory=list)
    weak: list[Term] = Field(default_factory=list)
    patterns: list[WeightedPattern] = Field(default_factory=list)


class IntentCues(_Rules):
    """Acts that count only when said as an intent: 扬言/威胁/要/就 ... 砍死/泼汽油/跳下去.

    An act (a regular expression) counts when one of the `markers` stands at most `window`
    characters before it in the same sentence, with no negator (不, 没 ...) between that
    nearest marker and the act nor just before the marker (不会去砍他, 没说要砍人).
    """

    markers: list[Term] = Field(min_length=1)
    acts: list[Regex] = Field(min_length=1)
    window: int = Field(default=16, ge=1, le=60)
    negators: list[Term] = Field(default_factory=list)


class SignalWords(_Rules):
    """Words that raise a risk or call in a department (threats, deaths, 上访 ...)."""

    zh: str
    en: str
    terms: list[Term] = Field(default_factory=list)
    patterns: list[Regex] = Field(default_factory=list)
    intent: IntentCues | None = None
    exceptions: list[Regex] = Field(
        default_factory=list, description="Phrases inside which a term does not count")


class VulnerableAge(_Rules):
    under: int = Field(default=18, ge=0, description="Minors: younger than this")
    at_least: int = Field(default=60, ge=0, description="The elderly: this age or older")


class TextReading(_Rules):
    aside_signals: list[str] = Field(
        default_factory=list, description="No category term or other signal counts inside "
        "what these signals matched (扬言开车撞死他 is no traffic accident and no death)")
    spellings: dict[Term, Term] = Field(
        default_factory=dict, description="Common misspellings read as the word meant: "
        "瞻养 → 赡养, 补尝 → 补偿")
    whole_words: list[Term] = Field(
        default_factory=list, description="Terms that count only as a word of their own "
        "(checked with jieba)")
    people_nouns: list[Term] = Field(
        default_factory=list, description="Nouns after 个 that make a head count: 五个工人")
    vulnerable_age: VulnerableAge = Field(default_factory=VulnerableAge)


class Scoring(_Rules):
    channel_confidence: float = Field(default=0.95, ge=0, le=1)
    no_terms_confidence: float = Field(default=0.5, ge=0, le=1)
    min_score: int = Field(default=2, ge=1, description="Below this the text decides nothing")
    full_score: int = Field(default=6, ge=1, description="A score this high is full confidence")
    focus_markers: list[str] = Field(
        default_factory=list,
        description="Words that say the caller's main matter follows (最主要的是, 说到最后才说): "
                    "category words after the last of them count double")


class When(_Rules):
    """Conditions that must all hold; an empty `when` always holds."""

    channel: list[ChannelCode] | None = None
    category: list[CategoryCode] | None = None
    risk: list[RiskCode] | None = None
    lead: list[DepartmentCode] | None = None
    signal: list[str] | None = Field(default=None, description="Any of these signals found")
    amount_at_least: float | None = Field(default=None, ge=0)
    people_at_least: int | None = Field(default=None, ge=1)
    prior_related_at_least: int | None = Field(default=None, ge=1)
    parties_in_different: Literal["village", "town"] | None = None


class RiskRule(_Rules):
    id: RuleId
    when: When
    zh: str
    en: str


class RiskPolicy(_Rules):
    """The first level (red, then orange, then yellow) with a rule that holds; else blue."""

    red: list[RiskRule] = Field(default_factory=list)
    orange: list[RiskRule] = Field(default_factory=list)
    yellow: list[RiskRule] = Field(default_factory=list)


class BaseTiers(_Rules):
    default: TierCode
    by_category: dict[CategoryCode, TierCode] = Field(default_factory=dict)


class TierRaise(_Rules):
    """Raise to at least `to`, or by `steps` levels; raises apply in file order, never lower."""

    id: RuleId
    when: When
    to: TierCode | None = None
    steps: int | None = Field(default=None, ge=1)
    zh: str
    en: str


class TierPolicy(_Rules):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    base: BaseTiers
    raises: list[TierRaise] = Field(default_factory=list, alias="raise")


class Cooperation(_Rules):
    id: RuleId
    department: CooperatingDepartment
    when: When
    zh: str
    en: str


class DepartmentPolicy(_Rules):
    village_tier: DepartmentCode
    by_category: dict[CategoryCode, DepartmentCode]
    cooperation: list[Cooperation] = Field(default_factory=list)


class UrgencyLimits(_Rules):
    """The limits a 12345 order's urgency (紧急程度) asks for, counted from its receipt."""

    accept_hours: float | None = Field(default=None, gt=0)
    resolve_days: float | None = Field(default=None, gt=0)


class SlaPolicy(_Rules):
    accept_hours: float = Field(gt=0)
    accept_hours_by_risk: dict[RiskCode, float] = Field(default_factory=dict)
    resolve_days: dict[TierCode, float]
    court_referral_days: float = Field(gt=0)
    # A 12345 order's urgency binds the case's limits where it is stricter (DOMAIN.md).
    hotline_urgency: dict[UrgencyCode, UrgencyLimits] = Field(default_factory=dict)


class RulesFile(_Rules):
    """The rules file as written, validated."""

    version: str = Field(min_length=1)
    description: str | None = None
    text: TextReading = Field(default_factory=TextReading)
    scoring: Scoring = Field(default_factory=Scoring)
    categories: dict[CategoryCode, CategoryTerms]
    channel_categories: dict[str, dict[str, CategoryCode]] = Field(default_factory=dict)
    signals: dict[str, SignalWords] = Field(default_factory=dict)
    risk: RiskPolicy
    tiers: TierPolicy
    departments: DepartmentPolicy
    sla: SlaPolicy


class RoutingRules:
    """A county's routing policy ready to route with: the validated file, compiled.

    Word lists become one Lexicon and each `when` one function of the case's facts, once
    per load, so routing a case does no more than it must.
    """

    __slots__ = ("_channel_cache", "_channel_map", "_spellings", "category_rank",
                 "cooperation", "departments", "document", "lexicon", "raises", "readings",
                 "risk_levels", "scoring", "sla", "text", "tiers", "version")

    def __init__(self, document: RulesFile) -> None:
        self.document = document
        self.version = document.version
        self.text = document.text
        self.scoring = document.scoring
        self.tiers = document.tiers
        self.departments = document.departments
        self.sla = document.sla
        self.lexicon = Lexicon(_word_lists(document))
        spellings = document.text.spellings
        # Longest first, so that a misspelling inside a longer one is not replaced first.
        self._spellings = (re.compile("|".join(map(re.escape, sorted(spellings, key=len,
                                                                      reverse=True))))
                           if spellings else None)
        # A category's place in the file breaks ties between equal scores.
        self.category_rank = {category.value: i for i, category in enumerate(document.categories)}
        self.risk_levels: tuple[tuple[Risk, tuple[tuple[RiskRule, Test], ...]], ...] = tuple(
            (level, tuple((rule, test_of(rule.when)) for rule in rules))
            for level, rules in ((Risk.RED, document.risk.red),
                                 (Risk.ORANGE, document.risk.orange),
                                 (Risk.YELLOW, document.risk.yellow)))
        self.raises = tuple((rule, test_of(rule.when)) for rule in document.tiers.raises)
        self.cooperation = tuple((rule, test_of(rule.when))
                                 for rule in document.departments.cooperation)
        self._channel_map = {
            channel: {normalise(name): category for name, category in names.items()}
            for channel, names in document.channel_categories.items()
        }
        self._channel_cache: dict[tuple[Channel, str], Category | None] = {}
        # reading.read's answers for these rules, by (text, year): kept here so that a
        # reload, which makes new rules, starts afresh.
        self.readings: dict[tuple[str, int | None], Any] = {}

    def respell(self, normalised: str) -> str:
        """Normalised text with the file's common misspellings read as the words meant."""
        if self._spellings is None:
            return normalised
        spellings = self.text.spellings
        return self._spellings.sub(lambda match: spellings[match.group()], normalised)

    def channel_category(self, channel: Channel, classification: str) -> Category | None:
        """The category a channel's own classification maps to; tries 矛盾纠纷/邻里纠纷 part by part."""
        key = (channel, classification)
        if key not in self._channel_cache:
            # Channels use a few dozen classification names: remember each answer.
            if len(self._channel_cache) >= 10_000:
                self._channel_cache.clear()
            self._channel_cache[key] = self._map_classification(channel, classification)
        return self._channel_cache[key]

    def _map_classification(self, channel: Channel, classification: str) -> Category | None:
        name = normalise(classification)
        own = self._channel_map.get(channel.value, {})
        shared = self._channel_map.get(ANY_CHANNEL, {})
        for candidate in (name, *reversed(re.split(r"[/>\-|、,;:]+", name))):
            category = own.get(candidate) or shared.get(candidate)
            if category is not None:
                return category
        return None

    def to_dict(self) -> dict[str, Any]:
        """The rules as the file states them (for GET /v1/routing/rules)."""
        return self.document.model_dump(mode="json", by_alias=True, exclude_none=True)


def _word_lists(document: RulesFile) -> list[WordList]:
    whole_words = frozenset(document.text.whole_words)
    lists: list[WordList] = []
    for category, terms in document.categories.items():
        weighted: dict[str, int] = {}
        for strength, weight in TERM_WEIGHTS.items():
            for term in getattr(terms, strength):
                weighted[term] = max(weight, weighted.get(term, 0))
        lists.append(WordList(
            name=CATEGORY_LIST + category.value, terms=weighted,
            patterns=tuple((p.regex, p.weight) for p in terms.patterns),
            whole_words=whole_words))
    for name, signal in document.signals.items():
        intent = None
        if signal.intent is not None:
            intent = Intent(tuple(signal.intent.markers), tuple(signal.intent.acts),
                            signal.intent.window, tuple(signal.intent.negators))
        lists.append(WordList(
            name=SIGNAL_LIST + name, terms=dict.fromkeys(signal.terms, 1),
            patterns=tuple((regex, 1) for regex in signal.patterns), intent=intent,
            exceptions=tuple(signal.exceptions), whole_words=whole_words))
    return lists


def load_rules(path: str | Path) -> RoutingRules:
    """Read, validate and compile a rules file; RulesError lists every problem found."""
    return parse_rules(read_yaml(path, RulesError), source=str(path))


def parse_rules(data: Any, *, source: str = "<rules>") -> RoutingRules:
    """Validate already-parsed YAML/JSON data as routing rules."""
    data = require_mapping(data, source, RulesError)
    try:
        document = RulesFile.model_validate(data)
    except ValidationError as exc:
        raise RulesError(source, describe(exc)) from None
    problems = _policy_problems(document)
    if problems:
        raise RulesError(source, problems)
    return RoutingRules(document)


def _policy_problems(rules: RulesFile) -> list[str]:
    """What a structurally valid file can still get wrong: references, gaps and duplicates."""
    problems: list[str] = []
    seen_ids: dict[str, str] = {}
    known_signals = sorted(rules.signals)

    def check_when(path: str, when: When) -> None:
        for name in when.signal or ():
            if name not in rules.signals:
                problems.append(f"{path}.when.signal: {name!r} is not a signal "
                                f"(known: {', '.join(known_signals)})")

    def check_id(path: str, rule_id: str) -> None:
        if rule_id in seen_ids:
            problems.append(f"{path}.id: {rule_id!r} is already used at {seen_ids[rule_id]}")
        seen_ids.setdefault(rule_id, path)

    for level in ("red", "orange", "yellow"):
        for i, risk_rule in enumerate(getattr(rules.risk, level)):
            path = f"risk.{level}[{i}]"
            check_id(path, risk_rule.id)
            check_when(path, risk_rule.when)
    for i, name in enumerate(rules.text.aside_signals):
        if name not in rules.signals:
            problems.append(f"text.aside_signals[{i}]: {name!r} is not a signal "
                            f"(known: {', '.join(known_signals)})")
    for i, raise_rule in enumerate(rules.tiers.raises):
        path = f"tiers.raise[{i}]"
        check_id(path, raise_rule.id)
        check_when(path, raise_rule.when)
        if (raise_rule.to is None) == (raise_rule.steps is None):
            problems.append(f"{path}: give exactly one of 'to' (a tier) or 'steps' (levels up)")
    for i, cooperation in enumerate(rules.departments.cooperation):
        path = f"departments.cooperation[{i}]"
        check_id(path, cooperation.id)
        check_when(path, cooperation.when)
    for category in Category:
        if category not in rules.departments.by_category:
            problems.append(f"departments.by_category: no department for {category.value!r}")
    for tier in Tier:
        if tier not in rules.sla.resolve_days:
            problems.append(f"sla.resolve_days: no time limit for the {tier.value!r} tier")
    for channel in rules.channel_categories:
        if channel != ANY_CHANNEL and channel not in {known.value for known in Channel}:
            problems.append(f"channel_categories: {channel!r} is not a channel (or 'any')")
    for level, hours in rules.sla.accept_hours_by_risk.items():
        if hours <= 0:
            problems.append(f"sla.accept_hours_by_risk.{level.value}: must be more than 0")
    for tier, days in rules.sla.resolve_days.items():
        if days <= 0:
            problems.append(f"sla.resolve_days.{tier.value}: must be more than 0")
    return problems
