"""Masking and keyed hashing of personal numbers: the only forms that leave intake.

One normaliser reads phone, id and bank card numbers the way people write them (separators,
+86 prefixes, full-width digits, brackets round an area code, extensions, old 15-digit id
numbers), and both the masks and the keyed hashes are made from what it reads: so a number
is masked whatever form it was written in, and equal numbers give equal hashes.

Free text is matched on a "shadow" of itself in which every full-width digit, bracket, plus
sign, dash, dot and space is replaced by its ASCII counterpart, one character for one: the
positions of a match in the shadow are its positions in the text.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import date
from typing import Any

# Full-width digits and letters X, brackets, plus; every dash, dot and space people type.
_SHADOW = str.maketrans(
    {**{chr(0xFF10 + i): str(i) for i in range(10)},
     "Ｘ": "X", "ｘ": "x", "（": "(", "）": ")", "＋": "+",
     **dict.fromkeys("‐‑‒–—―－﹣−", "-"), **dict.fromkeys("．。·・", "."),
     **dict.fromkeys("\u3000\u00a0\u2002\u2003\u2009\u202f\t", " ")})

# GB 11643-1999: weights of the first 17 digits (2^(18-i) mod 11) and the check characters.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def shadow(text: str) -> str:
    """The text with full-width digits and punctuation in ASCII, same length."""
    return text.translate(_SHADOW)


def id_number_check_character(first17: str) -> str:
    """The 18th character of a resident id number whose first 17 digits are `first17`."""
    total = sum(int(digit) * weight for digit, weight in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


# --- structured values: one canonical form per number -----------------------------------------

_PHONE_CHARS = re.compile(r"^[0-9 ()+\-.]+$")
_EXTENSION = re.compile(r"\s*(?:转|分机|ext\.?|x|#)\s*([0-9]{1,6})$", re.IGNORECASE)
_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")


def _area_code_length(digits: str) -> int:
    """010 and 02x are the three-character area codes; every other one has four."""
    return 3 if digits[1] in "12" else 4


def normalise_phone(value: str) -> str:
    """A mainland mobile as 11 digits (13912345678), a landline as area code, hyphen,
    number (010-12345678) and -extension if any; raise ValueError, without repeating the
    value, when it is neither."""
    text = shadow(value).strip()
    extension = None
    found = _EXTENSION.search(text)
    if found:
        extension, text = found.group(1), text[:found.start()]
    if not text or not _PHONE_CHARS.match(text):
        raise ValueError("not a mainland China mobile (11 digits, 1[3-9]...) "
                         "or landline (0xx-xxxxxxx)")
    groups = [g for g in re.split(r"[^0-9]+", text) if g]
    digits = "".join(groups)
    international = text.lstrip("( ").startswith(("+", "00"))
    if digits.startswith("0086") and len(digits) >= 13:
        digits, groups = digits[4:], groups if groups[0] != "0086" else groups[1:]
    elif digits.startswith("86") and (international or len(digits) == 13):
        digits, groups = digits[2:], groups if groups[0] != "86" else groups[1:]
    if _MOBILE.match(digits):
        return digits
    if digits.startswith("0") and len(digits) >= 10:
        area = _area_code_length(digits)
        number = digits[area:]
        # 010-12345678-123: a short last group after a whole number is an extension.
        if (extension is None and len(groups) > 1 and len(groups[-1]) <= 5
                and 7 <= len(number) - len(groups[-1]) <= 8):
            extension, number = groups[-1], number[:-len(groups[-1])]
        if 7 <= len(number) <= 8 and number[0] != "0":
            return f"{digits[:area]}-{number}" + (f"-{extension}" if extension else "")
    raise ValueError("not a mainland China mobile (11 digits, 1[3-9]...) "
                     "or landline (0xx-xxxxxxx)")


def _birth_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def normalise_id_number(value: str) -> str:
    """A resident id number as 18 characters with a final upper-case X; a 15-digit one (issued
    before 1999) is upgraded to its 18-character form, so both give one hash. Raise
    ValueError, without repeating the number, when it is neither shape."""
    number = re.sub(r"[ .\-]", "", shadow(value)).upper()
    if re.fullmatch(r"[0-9]{15}", number):
        first17 = number[:6] + "19" + number[6:]
        return first17 + id_number_check_character(first17)
    if not re.fullmatch(r"[0-9]{17}[0-9X]", number):
        raise ValueError("not a resident id number (17 digits, then a digit or X; "
                         "or 15 digits)")
    return number


def normalise_bank_card(value: str) -> str:
    number = re.sub(r"[ .\-]", "", shadow(value))
    if not re.fullmatch(r"[0-9]{16,19}", number):
        raise ValueError("not a bank card number (16-19 digits)")
    return number


_NORMALISERS: dict[str, Callable[[str], str]] = {
    "phone": normalise_phone, "id": normalise_id_number, "bank": normalise_bank_card}


def canonical(kind: str, value: str) -> str:
    """The one form of a number that is hashed; a value that is not such a number is
    compared as written (trimmed, upper case)."""
    try:
        return _NORMALISERS[kind](value)
    except (KeyError, ValueError):
        return shadow(value).strip().upper()


def keyed_hash(secret: str, kind: str, value: str) -> str:
    """HMAC-SHA256 of the canonical number: equal numbers, however written, give equal
    hashes under one secret."""
    return hmac.new(secret.encode(), f"{kind}:{canonical(kind, value)}".encode(),
                    hashlib.sha256).hexdigest()


# --- masks ------------------------------------------------------------------------------------

def _mask_canonical_phone(phone: str) -> str:
    if _MOBILE.match(phone):
        return f"{phone[:3]}****{phone[-4:]}"
    area, number = phone.split("-")[:2]
    return f"{area}-****{number[-4:]}"


def mask_phone(phone: str) -> str:
    """139****5678 for a mobile; the area code and last four digits of a landline
    (010-****5678); any other value keeps at most its last four characters."""
    try:
        return _mask_canonical_phone(normalise_phone(phone))
    except ValueError:
        return "****" + phone[-4:] if len(phone) > 8 else "****"


def mask_id_number(id_number: str) -> str:
    """First six (the region) and last four characters kept: 110105********0018."""
    try:
        number = normalise_id_number(id_number)
    except ValueError:
        number = id_number
    if len(number) <= 10:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


def mask_bank_card(number: str) -> str:
    """First four and last four digits kept: 6222***********0123."""
    digits = normalise_bank_card(number)
    return digits[:4] + "*" * (len(digits) - 8) + digits[-4:]


# --- free text ----------------------------------------------------------------------------------

_S = r"(?:[ ]?[.\-]?[ ]?)"   # an optional separator between two digits: 139-1234 5678
_G = r"(?:[ ]?[.\-][ ]?|[ ])"  # a separator between groups: 6222 0212 3456 7890
# Numbers are not taken out of longer runs of digits, nor (ids and cards) out of codes that
# mix letters and digits such as an order number GD20261123000100012.
_ID_18 = re.compile(
    r"(?<![0-9A-Za-z])(?:[1-9][0-9]{16}[0-9Xx]"
    rf"|[1-9][0-9]{{5}}{_G}[0-9]{{8}}{_G}[0-9]{{3}}[0-9Xx]"
    rf"|[1-9][0-9]{{5}}{_G}[0-9]{{4}}{_G}[0-9]{{4}}{_G}[0-9]{{3}}[0-9Xx]"
    rf"|[1-9][0-9]{{2}}{_G}[0-9]{{3}}{_G}[0-9]{{4}}{_G}[0-9]{{4}}{_G}[0-9]{{3}}[0-9Xx])"
    r"(?![0-9A-Za-z])")
_ID_15 = re.compile(
    rf"(?<![0-9A-Za-z])(?:[1-9][0-9]{{14}}|[1-9][0-9]{{5}}{_G}[0-9]{{6}}{_G}[0-9]{{3}})"
    r"(?![0-9A-Za-z])")
_BANK_CARD = re.compile(
    rf"(?<![0-9A-Za-z])(?:[1-9][0-9]{{15,18}}|[1-9][0-9]{{3}}(?:{_G}[0-9]{{4}}){{3}}"
    rf"(?:{_G}[0-9]{{1,3}})?|[1-9][0-9]{{5}}{_G}[0-9]{{10,13}})(?![0-9A-Za-z])")
_MOBILE_IN_TEXT = re.compile(
    r"(?<![0-9+])(?:\(?(?:\+|00)?86\)?[ \-]?)?"
    rf"1{_S}[3-9](?:{_S}[0-9]){{9}}(?![0-9])")
_LANDLINE_IN_TEXT = re.compile(
    r"(?<![0-9])(?:\(\s?0[0-9]{2,3}\s?\)|0[0-9]{2,3})"
    rf"{_S}[1-9](?:{_S}[0-9]){{6,7}}(?![0-9])")


# Every number scrub masks has at least ten digits (the shortest, a landline: 0, two more
# of area code, seven of number), so a text with fewer (most report texts, addresses and
# names) is returned as it is without running the five patterns: a single post scrubs about
# ten texts.
_TEN_DIGITS = re.compile(r"(?:[^0-9]*[0-9]){10}")


def _replace(pattern: re.Pattern[str], mask: Callable[[str], str | None],
             text: str, view: str) -> tuple[str, str]:
    """Replace each match of `pattern` in `view` (the shadow of `text`) by its mask, in both;
    a match the mask turns down (None) stays as it was."""
    out, seen, last = [], [], 0
    for match in pattern.finditer(view):
        masked = mask(match.group())
        if masked is None:
            continue
        out.append(text[last:match.start()] + masked)
        seen.append(view[last:match.start()] + masked)
        last = match.end()
    if not out:
        return text, view
    return "".join(out) + text[last:], "".join(seen) + view[last:]


def _id_18(found: str) -> str | None:
    number = normalise_id_number(found)
    return mask_id_number(number)


def _id_15(found: str) -> str | None:
    digits = re.sub(r"[^0-9]", "", found)
    if _birth_date(1900 + int(digits[6:8]), int(digits[8:10]), int(digits[10:12])) is None:
        return None  # not a birth date where a 15-digit id has one: some other code
    return digits[:6] + "*****" + digits[-4:]


def _phone(found: str) -> str | None:
    try:
        return _mask_canonical_phone(normalise_phone(found))
    except ValueError:
        return None


def scrub(text: str) -> str:
    """Mask every phone, id and bank card number in free text (report text, notes, log
    lines), whatever form it was written in. Dates, amounts, case ids and order numbers
    are not such numbers and stay as they are."""
    view = shadow(text)
    if _TEN_DIGITS.match(view) is None:
        return text  # no number masked here has fewer than ten digits
    text, view = _replace(_ID_18, _id_18, text, view)
    text, view = _replace(_BANK_CARD, mask_bank_card, text, view)
    text, view = _replace(_MOBILE_IN_TEXT, _phone, text, view)
    text, view = _replace(_ID_15, _id_15, text, view)
    text, view = _replace(_LANDLINE_IN_TEXT, _phone, text, view)
    return text


def scrub_values(value: Any) -> Any:
    """`value` with every string in it scrubbed, through dicts, lists and tuples (keys too):
    for structures that leave as a whole, such as log records, audit details, error bodies."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub_values(k): scrub_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_values(v) for v in value]
    return value
