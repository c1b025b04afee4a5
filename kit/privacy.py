"""Masking and keyed hashing of phone and id numbers: the only forms that leave intake."""

from __future__ import annotations

import hashlib
import hmac
import re

_MOBILE_IN_TEXT = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_ID_IN_TEXT = re.compile(r"(?<![\dA-Za-z])(\d{6})(?:\d{8}|\d{5})(\d{3}[\dXx])(?![\dA-Za-z])")
_LANDLINE_IN_TEXT = re.compile(r"(?<!\d)(0\d{2,3}-?)\d{3,4}(\d{4})(?!\d)")


def mask_phone(phone: str) -> str:
    """138****8000 for a mobile; keep the area code and last four digits of a landline."""
    if len(phone) == 11 and phone.isdigit():
        return f"{phone[:3]}****{phone[-4:]}"
    if len(phone) > 4:
        return phone[: max(0, len(phone) - 8)] + "****" + phone[-4:]
    return "****"


def mask_id_number(id_number: str) -> str:
    """First six (the region) and last four characters kept: 110105********0018."""
    if len(id_number) <= 10:
        return "*" * len(id_number)
    return id_number[:6] + "*" * (len(id_number) - 10) + id_number[-4:]


def keyed_hash(secret: str, kind: str, value: str) -> str:
    """HMAC-SHA256 of a normalised value; equal numbers give equal hashes under one secret."""
    normalised = value.strip().upper()
    return hmac.new(secret.encode(), f"{kind}:{normalised}".encode(), hashlib.sha256).hexdigest()


def scrub(text: str) -> str:
    """Mask every phone or id number that appears in free text (log lines, notes)."""
    text = _ID_IN_TEXT.sub(lambda m: m.group(1) + "********" + m.group(2), text)
    text = _MOBILE_IN_TEXT.sub(r"\1****\2", text)
    return _LANDLINE_IN_TEXT.sub(r"\1****\2", text)
