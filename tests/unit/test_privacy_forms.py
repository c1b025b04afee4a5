"""Numbers written every way people write them, inside Chinese text: each is masked by
scrub, and each form hashes like the plain form (kit.privacy's one normaliser)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from kit.privacy import (
    id_number_check_character,
    keyed_hash,
    mask_id_number,
    mask_phone,
    normalise_id_number,
    normalise_phone,
    scrub,
)

FULL_WIDTH = str.maketrans({str(i): chr(0xFF10 + i) for i in range(10)} | {"X": "Ｘ"})
SEPARATORS = [" ", "-", ".", "－", "\u3000", " - ", "—"]

# Chinese text around a number: words that end or start next to it, punctuation too.
before = st.sampled_from(["来电人电话", "联系方式：", "手机", "身份证号", "请回电", "", "（",
                          "当事人王某，", "卡号:", "备注 "])
after = st.sampled_from(["，请尽快处理。", "", "）", " 谢谢", "。欠款12000元", "，2026-11-23来访",
                         "；工单GD20261123-0001"])


def digits(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=n, max_size=n)


@st.composite
def mobiles(draw: st.DrawFn) -> str:
    return "1" + draw(st.sampled_from("3456789")) + draw(digits(9))


@st.composite
def landlines(draw: st.DrawFn) -> str:
    area = draw(st.sampled_from(["010", "021", "025", "0571", "0755", "0931"]))
    number = draw(st.sampled_from("23456789")) + draw(digits(draw(st.sampled_from([6, 7]))))
    return f"{area}-{number}"


@st.composite
def id_numbers(draw: st.DrawFn) -> str:
    born = f"{draw(st.integers(1930, 2010))}{draw(st.integers(1, 12)):02d}" \
           f"{draw(st.integers(1, 28)):02d}"
    first17 = draw(st.sampled_from(["110105", "330106", "440524", "510107"])) + born \
        + draw(digits(3))
    return first17 + id_number_check_character(first17)


@st.composite
def bank_cards(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(["6222", "6217", "6228", "4367", "5187"])) \
        + draw(digits(draw(st.integers(12, 15))))


def grouped(draw: st.DrawFn, number: str, sizes: list[int]) -> str:
    """The number in groups of `sizes` joined by one separator, maybe full-width."""
    separator = draw(st.sampled_from(SEPARATORS))
    parts, at = [], 0
    for size in sizes:
        parts.append(number[at:at + size])
        at += size
    if at < len(number):
        parts.append(number[at:])
    written = separator.join(p for p in parts if p)
    return written.translate(FULL_WIDTH) if draw(st.booleans()) else written


@st.composite
def written_mobiles(draw: st.DrawFn) -> tuple[str, str]:
    number = draw(mobiles())
    sizes = draw(st.sampled_from([[11], [3, 4, 4], [3, 8], [7, 4], [4, 3, 4], [3, 3, 5]]))
    written = grouped(draw, number, sizes)
    prefix = draw(st.sampled_from(["", "+86 ", "+86", "0086 ", "0086", "86 ", "86-",
                                   "(+86) ", "＋86 "]))
    return number, prefix + written


@st.composite
def written_landlines(draw: st.DrawFn) -> tuple[str, str, str]:
    number = draw(landlines())
    area, rest = number.split("-")
    sep = draw(st.sampled_from(["-", "", " ", "－"]))
    body = draw(st.sampled_from([rest, rest[:-4] + " " + rest[-4:], rest[:-4] + "-" + rest[-4:]]))
    form = draw(st.sampled_from(["{a}{s}{b}", "({a}){b}", "（{a}）{b}", "({a}) {b}"]))
    written = form.format(a=area, s=sep, b=body)
    if draw(st.booleans()):
        written = written.translate(FULL_WIDTH)
    return number, written, draw(st.sampled_from(["", "转123", "-8001", " ext 12"]))


@st.composite
def written_ids(draw: st.DrawFn) -> tuple[str, str]:
    number = draw(id_numbers())
    if draw(st.booleans()):
        number = number[:-1] + number[-1].lower()
    sizes = draw(st.sampled_from([[18], [6, 8, 4], [6, 4, 4, 4], [3, 3, 4, 4, 4]]))
    return number.upper(), grouped(draw, number, sizes)


@st.composite
def written_cards(draw: st.DrawFn) -> tuple[str, str]:
    number = draw(bank_cards())
    sizes = draw(st.sampled_from([[len(number)], [4, 4, 4, 4]]))
    return number, grouped(draw, number, sizes)


def clear_in(number: str, text: str) -> bool:
    """Whether the number's digits appear in the text, in any form: separators and
    full-width digits removed before looking."""
    plain = re.sub(r"[^0-9A-Za-z*]", "", text.translate(
        {0xFF10 + i: str(i) for i in range(10)}))
    return number.upper() in plain.upper()


@settings(max_examples=300, deadline=None)
@given(before, written_mobiles(), after)
def test_a_mobile_in_any_form_is_masked_and_hashes_alike(head: str, mobile: tuple[str, str],
                                                         tail: str) -> None:
    number, written = mobile
    out = scrub(head + written + tail)
    assert not clear_in(number, out), out
    assert number[:3] + "****" + number[-4:] in out
    assert normalise_phone(written) == number
    assert keyed_hash("k", "phone", written) == keyed_hash("k", "phone", number)
    assert mask_phone(written) == mask_phone(number)


@settings(max_examples=300, deadline=None)
@given(before, written_landlines(), after)
def test_a_landline_in_any_form_is_masked_and_hashes_alike(
        head: str, line: tuple[str, str, str], tail: str) -> None:
    number, written, extension = line
    subscriber = number.split("-")[1]
    out = scrub(head + written + extension + tail)
    assert written not in out and not clear_in(number.replace("-", ""), out), out
    assert number.split("-")[0] + "-****" + subscriber[-4:] in out
    assert keyed_hash("k", "phone", written) == keyed_hash("k", "phone", number)
    with_extension = number + ("-" + re.sub(r"[^0-9]", "", extension) if extension else "")
    assert normalise_phone(written + extension) == with_extension


@settings(max_examples=300, deadline=None)
@given(before, written_ids(), after)
def test_an_id_number_in_any_form_is_masked_and_hashes_alike(head: str, id_: tuple[str, str],
                                                             tail: str) -> None:
    number, written = id_
    out = scrub(head + written + tail)
    assert not clear_in(number, out), out
    assert mask_id_number(number) in out
    assert normalise_id_number(written) == number
    assert keyed_hash("k", "id", written) == keyed_hash("k", "id", number)


@settings(max_examples=300, deadline=None)
@given(before, written_cards(), after)
def test_a_bank_card_in_any_form_is_masked_and_hashes_alike(head: str, card: tuple[str, str],
                                                            tail: str) -> None:
    number, written = card
    out = scrub(head + written + tail)
    assert not clear_in(number, out), out
    assert number[-4:] in out and number[4:-4] not in re.sub(r"[^0-9]", "", out)
    assert keyed_hash("k", "bank", written) == keyed_hash("k", "bank", number)


def test_a_fifteen_digit_id_hashes_like_its_eighteen_character_form() -> None:
    assert normalise_id_number("110105900101001") == "110105199001010010"
    assert keyed_hash("k", "id", "110105 900101 001") == keyed_hash("k", "id",
                                                                    "110105199001010010")
    assert "900101" not in scrub("旧身份证110105900101001")


def test_ordinary_numbers_stay_as_written() -> None:
    text = ("2026-11-23 下午3点，欠款12000元，利息1.5万，工单GD20261123-0001，案号"
            "FQ20261207-ABCDEFGHJKLMNP，(2026)浙0106民初1234号，金额1,000,000元，"
            "网格330106001001，2026年11月23日14:30，第13912号，门牌88-1号")
    assert scrub(text) == text


def test_a_date_next_to_a_phone_keeps_the_date() -> None:
    assert scrub("2026-11-23 13912345678") == "2026-11-23 139****5678"
