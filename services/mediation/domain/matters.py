"""Repeat reports of one matter (关联): the keys that tie a case to others (a person by the
keyed hash of their phone or id number, an address, a place), and how near two places must
be. Pure logic: the store keeps the keys in a table of their own and queries them.

No phone or id number is ever in clear here: reports reach mediation with keyed hashes
only (docs/privacy.md), and an address key is a hash of the normalised address too, so the
key table holds nothing one could read a person or a home from."""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

# Related by person or by place only within this window (DOMAIN.md: repeats within 90
# days, as the router counts prior cases).
RELATED_WINDOW = timedelta(days=90)
# Two reports with coordinates this close are about the same place.
SAME_PLACE_METRES = 100.0
# Places are indexed in cells of 0.001° (about 111 m north-south, less east-west); a place
# within SAME_PLACE_METRES is in the same cell or one of its eight neighbours.
_CELL_DEGREES = 0.001
_EARTH_RADIUS_M = 6_371_000.0


class KeyKind(StrEnum):
    PARTY = "party"  # the keyed hash of a reporter's or party's phone or id number
    ADDRESS = "address"  # the hash of the normalised address
    PLACE = "place"  # the cell of the report's coordinates


class Relation(StrEnum):
    """Why a case is related to another (more than one may hold)."""

    SAME_PARTY = "same_party"
    SAME_ADDRESS = "same_address"
    SAME_PLACE = "same_place"
    SAME_EXTERNAL_MATTER = "same_external_matter"
    MERGED = "merged"


@dataclass(frozen=True)
class MatchKey:
    kind: KeyKind
    key: str


_NOT_ADDRESS = re.compile(r"[\s\W_]+", re.UNICODE)


def normalise_address(address: str) -> str:
    """Full-width to half-width, lower case, no spaces or punctuation: "城关街道 3号" and
    "城关街道3号" are one address."""
    text = unicodedata.normalize("NFKC", address).lower()
    return _NOT_ADDRESS.sub("", text)


def address_key(address: str) -> str | None:
    normalised = normalise_address(address)
    if len(normalised) < 4:  # "城关" alone says nothing about a place
        return None
    return hashlib.sha256(normalised.encode()).hexdigest()


def _cell(lat: float, lon: float) -> tuple[int, int]:
    return math.floor(lat / _CELL_DEGREES), math.floor(lon / _CELL_DEGREES)


def place_key(lat: float, lon: float) -> str:
    y, x = _cell(lat, lon)
    return f"{y}:{x}"


def nearby_place_keys(lat: float, lon: float) -> list[str]:
    """The cell of the place and its eight neighbours: every place within
    SAME_PLACE_METRES is in one of them."""
    y, x = _cell(lat, lon)
    return [f"{y + dy}:{x + dx}" for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def distance_metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * _EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, h)))


def location_of(report: dict[str, Any] | None) -> tuple[float, float] | None:
    """The coordinates of a stored report (CaseReported as JSON), if it has them."""
    location = (report or {}).get("location")
    if not isinstance(location, dict):
        return None
    try:
        return float(location["lat"]), float(location["lon"])
    except (KeyError, TypeError, ValueError):
        return None


def person_hashes(report: dict[str, Any] | None) -> set[str]:
    """The keyed hashes of every phone and id number the report names (reporter and
    parties)."""
    report = report or {}
    people = [report.get("reporter"), *(report.get("parties") or [])]
    return {person[name] for person in people if isinstance(person, dict)
            for name in ("phone_hash", "id_number_hash") if person.get(name)}


def match_keys(report: dict[str, Any] | None) -> set[MatchKey]:
    """The keys a report is indexed by, to find the others of its matter."""
    keys = {MatchKey(KeyKind.PARTY, h) for h in person_hashes(report)}
    address = (report or {}).get("address")
    if isinstance(address, str) and (hashed := address_key(address)):
        keys.add(MatchKey(KeyKind.ADDRESS, hashed))
    if (point := location_of(report)) is not None:
        keys.add(MatchKey(KeyKind.PLACE, place_key(*point)))
    return keys


def lookup_keys(report: dict[str, Any] | None) -> set[MatchKey]:
    """The keys to look the others up by: a place is looked up in its neighbouring cells
    too."""
    keys = {k for k in match_keys(report) if k.kind is not KeyKind.PLACE}
    if (point := location_of(report)) is not None:
        keys |= {MatchKey(KeyKind.PLACE, cell) for cell in nearby_place_keys(*point)}
    return keys
