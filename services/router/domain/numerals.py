"""Numbers as reports write them: money, head counts and ages, in Arabic or Chinese numerals.

Reports mix 9600元, 3.5万, 八万八千元, 一万多元, 20多名, 十几人, 上百名 and 七八个人. Every
reading is the lower bound of what the words say ("20多名" is 20, "十几人" is 11), because
the policy's thresholds ask "at least how many / how much".
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import lru_cache

_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "壹": 1, "二": 2, "贰": 2, "两": 2, "三": 3, "叁": 3,
    "四": 4, "肆": 4, "五": 5, "伍": 5, "六": 6, "陆": 6, "七": 7, "柒": 7, "八": 8,
    "捌": 8, "九": 9, "玖": 9,
}
_SMALL_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_BIG_UNITS = {"万": 10_000, "亿": 100_000_000}
_UNITS = _SMALL_UNITS | _BIG_UNITS
# 几 ("a few") reads as 2 when it leads (几十 = 20 at least) and 1 after a unit (十几 = 11).
_SOME = "几"

_NUMERAL_CHARS = "".join(_DIGITS) + "".join(_UNITS) + _SOME
_TOKEN = re.compile(rf"\d+(?:\.\d+)?|[{_NUMERAL_CHARS}]")
QUANTITY = re.compile(
    rf"(?P<pre>好几|上|近|数)?(?P<num>(?:\d+(?:\.\d+)?|[{_NUMERAL_CHARS}])+)"
    r"(?:(?P<approx>多|余|来)(?P<tail>[万亿千百])?)?"  # 三十多万: "more than 30" of 万
)

_MONEY_SUFFIXES = ("元", "块", "圆", "人民币")
# After a bare 万/千 these make it something other than money (十八万 is money, 两万亩 is not).
_NOT_MONEY_AFTER = frozenset("人名位户家口个亩平方米斤吨公里字次件头只株棵年月日天岁号层台辆间套元块圆")
_PEOPLE_UNITS = frozenset("名人位户家口")
# 三四十号人, 几十号工人: 号 counts people only before a word for people (三号楼 is a building).
_PEOPLE_BY_HAO = ("号人", "号工人", "号村民", "号农民工")
# 五个月, 三个小时: 个 counting time, not people.
_NOT_PEOPLE_AFTER_GE = ("月", "小时", "钟头", "星期", "礼拜", "工作日", "季度", "半月", "多月")
# 二十余人均未受伤, 5名乘客均无大碍, 3人受伤: people counted as hurt or unhurt are not a side.
_COUNTED_AS_HURT = re.compile(
    r"[^\d,。;]{0,4}?(?:均|都|全部|全都)(?:未|没有?|无)(?:受伤|伤亡|大碍)"
    r"|(?:受伤|死亡|遇难|伤亡|身亡)")
# 1958年出生, 1962年5月生: an age from the year of birth.
_BORN = re.compile(r"((?:19|20)\d\d)年(?:\d{1,2}月(?:\d{1,2}日)?)?(?:出生|生人|生(?=[,，。;)）]))")


def parse_number(numeral: str) -> float | None:
    """The value of a numeral such as 9600, 3.5万, 八万八千, 一百二十万, 两千五 or 二〇二四.

    None when the string holds no numeral. Ranges such as 七八 read as their lower end.
    """
    total = 0.0      # completed 万/亿 sections
    section = 0.0    # the part below the current big unit
    digit: float | None = None
    digit_was_chinese = False
    last_unit = 1    # the unit just used, for colloquial tails: 两千五 = 2500
    seen_unit = False
    seen_any = False
    for token in _TOKEN.findall(numeral):
        seen_any = True
        if token in _UNITS:
            unit = _UNITS[token]
            if unit in _BIG_UNITS.values():
                value = section + (digit or 0.0)
                if value == 0 and total == 0:
                    value = 1.0  # 上万, 万余: a bare 万 is one 万
                if unit > 10_000:
                    total = (total + value) * unit
                else:
                    total += value * unit
                section = 0.0
            else:
                section += (1.0 if digit is None else digit) * unit
            digit = None
            digit_was_chinese = False
            last_unit = unit
            seen_unit = True
            continue
        if token == _SOME:
            value_of_some = 1.0 if seen_unit else 2.0
            digit = value_of_some if digit is None else digit
            digit_was_chinese = True
            continue
        if token in _DIGITS:
            value = float(_DIGITS[token])
            if value == 0 and seen_unit:
                # 一百零五: a zero after a unit only says "skip a place".
                last_unit = 1
                continue
            if digit is not None and digit_was_chinese:
                if value == digit + 1:
                    continue  # 七八个人: a range, keep its lower end
                digit = digit * 10 + value  # 二〇二四: digit by digit
            else:
                digit = value
            digit_was_chinese = True
            continue
        digit = float(token)
        digit_was_chinese = False
    if not seen_any:
        return None
    if digit is not None:
        # 两千五 / 三万五 / 一万二: a bare digit after a unit counts in the next place down.
        section += digit * (last_unit / 10 if last_unit >= 100 else 1)
    return total + section


@dataclass(frozen=True)
class Quantities:
    """What a text says about money, people and ages."""

    amounts: list[float] = field(default_factory=list)
    head_counts: list[int] = field(default_factory=list)
    ages: list[int] = field(default_factory=list)

    @property
    def largest_amount(self) -> float | None:
        return max(self.amounts) if self.amounts else None

    @property
    def largest_head_count(self) -> int | None:
        return max(self.head_counts) if self.head_counts else None


@lru_cache(maxsize=16)
def _people_after_ge(people_nouns: tuple[str, ...]) -> re.Pattern[str] | None:
    """个 + a people noun, with up to three words before it: 五个工人, 五六个快递员, 十几个工友."""
    if not people_nouns:
        return None
    nouns = "|".join(sorted(map(re.escape, people_nouns), key=len, reverse=True))
    return re.compile(rf"个(?:[^\W\d的了地得和与及]{{0,3}}?)(?:{nouns})")


def read_quantities(text: str, people_nouns: Collection[str] = (),
                    year: int | None = None) -> Quantities:
    """Money (元), head counts (名/人/户/..., or 个 + a people noun) and ages (岁, or a year of
    birth when the report's `year` is known) in normalised text."""
    amounts: list[float] = []
    head_counts: list[int] = []
    ages: list[int] = []
    people_after_ge = _people_after_ge(tuple(people_nouns))
    for match in QUANTITY.finditer(text):
        start, end = match.span()
        if start and text[start - 1] == "第":
            continue  # 第三名 is a rank, not three people
        numeral, prefix, tail = match["num"], match["pre"], match["tail"]
        if tail:
            numeral += tail
        # What follows says what the number counts; most numerals in a report (一直, 一起)
        # count nothing, so look before parsing.
        rest = text[end:end + 4]
        if rest.startswith(_MONEY_SUFFIXES) or _is_bare_money(numeral, prefix, rest):
            counts = "money"
        elif rest.startswith(("岁", "周岁")):
            counts = "age"
        elif rest[:1] in _PEOPLE_UNITS or rest.startswith(_PEOPLE_BY_HAO) or (
                rest.startswith("个") and people_after_ge is not None
                and not rest.startswith(_NOT_PEOPLE_AFTER_GE, 1)
                and people_after_ge.match(text, end) is not None):
            if _COUNTED_AS_HURT.match(text, end + 1):
                continue
            counts = "people"
        else:
            continue
        value = parse_number(match["num"])
        if value is None:
            continue
        if prefix == "数" and numeral[0] in _UNITS:
            value *= 2  # 数十 / 数百: several tens or hundreds, at least two
        if tail:
            value *= _UNITS[tail]
        if counts == "money":
            amounts.append(value)
        elif counts == "age":
            ages.append(int(value))
        else:
            head_counts.append(int(value))
    if year is not None and "年" in text:
        for born in _BORN.finditer(text):
            age = year - int(born.group(1))
            if 0 <= age < 130:
                ages.append(age)
    return Quantities(amounts, head_counts, ages)


def _is_bare_money(numeral: str, prefix: str | None, rest: str) -> bool:
    """十八万 with no 元 is still money; 千万别, 万一 and 两万亩 are not."""
    if not any(unit in numeral for unit in ("万", "亿", "千")):
        return False
    leads_with_unit = numeral[0] in _UNITS and numeral[0] != "十"
    if leads_with_unit and prefix is None:
        return False
    return rest[:1] not in _NOT_MONEY_AFTER
