"""Erasing a case's personal data from what a service stores, keeping its facts.

A stored payload (a channel's native payload, a canonical report, a delivery's body) is a
JSON tree: fields that name or reach a person (names, phone and id numbers, addresses,
locations, photo links, e-mail, device and account ids) are emptied, and free text keeps its
words but loses every personal string the same payload names, every phone or id number and
every link. Identifiers of the case itself (order numbers, region and grid codes) and its
facts (category, dates, departments, outcome, amounts) stay, so the figures do not change.
Erasing twice gives the same result: the job and its consumers may run again safely."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

ERASED = "[已删除]"
# Fields whose whole value is personal data, in any channel's payload, the canonical report
# (PartyRef), notify's records and the Open311 face.
PERSONAL_FIELDS = frozenset({
    "name", "phone", "id_number", "address", "caller_name", "caller_phone", "address_string",
    "address_id", "email", "device_id", "account_id", "first_name", "last_name", "media_url",
    "photos", "location", "lat", "long", "phone_masked", "phone_hash", "id_number_masked",
    "id_number_hash", "reporter_phone_masked", "contact_phone"})
# Free text written by staff along the way (transition reasons, notes, agreements, results):
# a service that does not know the parties' names (notify) drops it whole.
STAFF_TEXT_FIELDS = frozenset({
    "reason", "notes", "visit_notes", "agreement", "failure_reason", "withdrawal_reason",
    "result", "status_notes"})
# Free text stays (it says what the case was about) once personal strings are taken out.
_NUMBER_OR_LINK = re.compile(
    r"https?://\S+"
    r"|(?<![\dA-Za-z])\d{6}(?:\d{8}|\d{5})\d{3}[\dXx](?![\dA-Za-z])"  # id numbers
    r"|(?<!\d)(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)"      # mobiles
    r"|(?<!\d)0\d{2,3}-?\d{7,8}(?!\d)"                                 # landlines
    r"|(?<!\d)1[3-9]\d\*{4}\d{4}(?!\d)")                               # masked mobiles


def _identifier(key: str) -> bool:
    """The case's own ids and codes: facts, and no person's."""
    return key.endswith(("_no", "_id", "_code", "_url")) or key in ("id", "type", "source")


def personal_strings(value: Any) -> set[str]:
    """Every string under a personal field of `value` (names, numbers, addresses): what
    free text elsewhere in the same record may repeat."""
    found: set[str] = set()

    def walk(node: Any, personal: bool) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, personal or key in PERSONAL_FIELDS)
        elif isinstance(node, list):
            for child in node:
                walk(child, personal)
        elif personal and isinstance(node, str) and len(node.strip()) >= 2:
            found.add(node.strip())

    walk(value, False)
    return found


def erase_text(text: str, known: Iterable[str] = ()) -> str:
    """`text` without the `known` personal strings, phone and id numbers, or links."""
    for item in sorted(known, key=len, reverse=True):
        text = text.replace(item, ERASED)
    return _NUMBER_OR_LINK.sub(ERASED, text)


def erase_json(value: Any, known: Iterable[str] = (), drop: frozenset[str] = frozenset()
               ) -> Any:
    """`value` with personal fields emptied (None) and its free text erased, names the tree
    itself holds included; the text of fields in `drop` is replaced whole."""
    names = personal_strings(value) | set(known)

    def walk(node: Any, key: str | None) -> Any:
        if isinstance(node, dict):
            return {k: None if k in PERSONAL_FIELDS
                    else ERASED if k in drop and isinstance(v, str) and v
                    else walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(child, key) for child in node]
        if isinstance(node, str) and not (key and _identifier(key)):
            return erase_text(node, names)
        return node

    return walk(value, None)


def count_erasures_from_zero(service: str) -> None:
    """Export the service's erasure counter at 0 for every reason, so that a dashboard
    shows "none erased" rather than no data."""
    from kit.metrics import PERSONAL_DATA_ERASED

    for reason in ("retention", "request"):
        PERSONAL_DATA_ERASED.labels(service=service, reason=reason)
