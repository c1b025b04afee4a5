"""The county's jurisdiction tree (county → town → village → grid) and how a case finds its node.

The tree is data (DOMAIN.md "Tiers and jurisdictions"): administrative division codes (6, 9
and 12 digits; a grid is its village's code plus 3), police stations and courts mapped to the
node they serve, names and short names for reading addresses, and villages' boundaries and
grids' centres for reading coordinates (places.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.enums import Tier
from contracts.events import CaseReported, JurisdictionRef
from services.router.domain.datafile import DataFileError, describe, read_yaml, require_mapping
from services.router.domain.places import Lonlat, PlaceIndex, Shape
from services.router.domain.text import Lexicon, WordList, normalise


class Level(StrEnum):
    COUNTY = "county"
    TOWN = "town"
    VILLAGE = "village"
    GRID = "grid"

    @property
    def depth(self) -> int:
        """0 for the county, 1 town, 2 village, 3 grid."""
        return _DEPTH[self]


_DEPTH = {Level.COUNTY: 0, Level.TOWN: 1, Level.VILLAGE: 2, Level.GRID: 3}
_CODE_LENGTH = {Level.COUNTY: 6, Level.TOWN: 9, Level.VILLAGE: 12, Level.GRID: 15}
# The tier that works a case and the level of the node whose centre does it.
_ADDRESS_CACHE_SIZE = 10_000
_STREET = "(?:路|大道|大街|街(?!道)|巷|弄)"
TIER_LEVEL = {Tier.VILLAGE: Level.VILLAGE, Tier.TOWN: Level.TOWN, Tier.COUNTY: Level.COUNTY}


class JurisdictionsError(DataFileError):
    """The jurisdictions file cannot be used; `problems` lists every reason, each with its path."""

    what = "jurisdictions"


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    """One node of the tree."""

    code: str
    name: str
    level: Level
    parent: str | None

    def ref(self) -> JurisdictionRef:
        return JurisdictionRef(code=self.code, name=self.name, level=self.level.value)


@dataclass(frozen=True, slots=True)
class Location:
    """Where a case was found to be, and from which of its fields."""

    node: Jurisdiction
    source: str  # grid_code, region_code, station_code, court_code, coordinates, address,
    # parties or text


# ---- the file ---------------------------------------------------------------------------

class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# [longitude, latitude] in degrees, GeoJSON's order.
_Point = tuple[Annotated[float, Field(ge=-180, le=180)], Annotated[float, Field(ge=-90, le=90)]]
_Polygon = Annotated[list[_Point], Field(min_length=3, description="corners in order")]


class _Shaped(_File):
    boundary: _Polygon | None = None
    centre: _Point | None = None


class _Grid(_Shaped):
    code: str = Field(pattern=r"^\d{15}$")
    name: str = Field(min_length=1)


class _Village(_Shaped):
    code: str = Field(pattern=r"^\d{12}$")
    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    grids: list[_Grid] = Field(default_factory=list)


class _Town(_File):
    code: str = Field(pattern=r"^\d{9}$")
    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    villages: list[_Village] = Field(default_factory=list)


class _County(_File):
    code: str = Field(pattern=r"^\d{6}$")
    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)


class _Office(_File):
    code: str = Field(min_length=1)
    name: str = Field(min_length=1)
    jurisdiction: str = Field(description="The code of the node it serves")


class _Places(_File):
    max_distance_m: float = Field(default=2000, gt=0, le=100_000, description="Farther than "
                                  "this from every boundary and centre is outside the county")


class _JurisdictionsFile(_File):
    version: str = Field(min_length=1)
    places: _Places = Field(default_factory=_Places)
    county: _County
    towns: list[_Town] = Field(min_length=1)
    police_stations: list[_Office] = Field(default_factory=list)
    courts: list[_Office] = Field(default_factory=list)


# ---- the tree ---------------------------------------------------------------------------

class JurisdictionTree:
    """The nodes by code, offices by code, and an index of names for reading addresses."""

    def __init__(self, version: str, nodes: Iterable[Jurisdiction],
                 stations: Mapping[str, str], courts: Mapping[str, str],
                 names: Mapping[str, Iterable[str]], places: PlaceIndex | None = None
                 ) -> None:
        self.version = version
        self.places = places or PlaceIndex((), 0)
        self._nodes: dict[str, Jurisdiction] = {node.code: node for node in nodes}
        self._children: dict[str, list[Jurisdiction]] = {}
        for node in self._nodes.values():
            if node.parent is not None:
                self._children.setdefault(node.parent, []).append(node)
        roots = [node for node in self._nodes.values() if node.parent is None]
        self.root = roots[0]
        # Each node's codes from the county down to itself: ancestry checks are lookups.
        self._lineage: dict[str, tuple[str, ...]] = {}
        for node in self._nodes.values():
            chain: list[str] = []
            current: Jurisdiction | None = node
            while current is not None:
                chain.append(current.code)
                current = self._nodes.get(current.parent) if current.parent else None
            self._lineage[node.code] = tuple(reversed(chain))
        # Each node's point on the map: its own shape's, else the average of its children's
        # (a town's is the middle of its villages). None where nothing below has a shape.
        self._centres: dict[str, Lonlat | None] = {}
        for node in sorted(self._nodes.values(), key=lambda n: -n.level.depth):
            own = self.places.centre(node.code)
            below = [c for c in (self._centres.get(child.code)
                                 for child in self._children.get(node.code, [])) if c]
            self._centres[node.code] = own or (
                (sum(c[0] for c in below) / len(below), sum(c[1] for c in below) / len(below))
                if below else None)
        # Addresses repeat (the same village, the same street); remember what they resolved to.
        self._address_cache: dict[str, Jurisdiction | None] = {}
        self._stations = dict(stations)
        self._courts = dict(courts)
        # One word list per node: its name and short names. Codes are list names. A name
        # followed by 路/街/巷 is a street named after the place (江滨路), not the place.
        self._names = Lexicon(
            WordList(name=code, terms=dict.fromkeys(terms, 1),
                     exceptions=("(?:" + "|".join(map(re.escape, terms)) + ")" + _STREET,))
            for code, terms in names.items() if terms)

    def get(self, code: str) -> Jurisdiction | None:
        return self._nodes.get(code)

    def nodes(self, level: Level | None = None, parent: str | None = None,
              within: str | None = None) -> list[Jurisdiction]:
        """Nodes in code order: of a level, children of `parent`, descendants of `within`."""
        if parent is not None:
            found: Iterable[Jurisdiction] = self._children.get(parent, [])
        else:
            found = self._nodes.values()
        selected = [node for node in found
                    if (level is None or node.level == level)
                    and (within is None or self.is_within(node.code, within))]
        return sorted(selected, key=lambda node: node.code)

    def children(self, code: str) -> list[Jurisdiction]:
        return sorted(self._children.get(code, []), key=lambda node: node.code)

    def ancestors(self, code: str) -> list[Jurisdiction]:
        """Every node above this one, nearest first (a village: its town, then the county)."""
        return [self._nodes[ancestor] for ancestor in reversed(self._lineage.get(code, ())[:-1])]

    def is_within(self, code: str, ancestor: str) -> bool:
        """True for the node itself and every node below `ancestor`."""
        return ancestor in self._lineage.get(code, ())

    def at_level(self, node: Jurisdiction, level: Level) -> Jurisdiction:
        """The node's ancestor at `level`, or the node itself when it is already that high."""
        if node.level.depth <= level.depth:
            return node
        return self._nodes[self._lineage[node.code][level.depth]]

    def by_code(self, code: str) -> Jurisdiction | None:
        """A node by division or grid code; an unknown code falls back to its known prefix."""
        code = code.strip()
        for length in (15, 12, 9, 6):
            if len(code) >= length and code[:length] in self._nodes:
                return self._nodes[code[:length]]
        return None

    def by_station(self, station_code: str) -> Jurisdiction | None:
        target = self._stations.get(station_code.strip())
        return self._nodes.get(target) if target else None

    def by_court(self, court_code: str) -> Jurisdiction | None:
        target = self._courts.get(court_code.strip())
        return self._nodes.get(target) if target else None

    def by_point(self, lat: float, lon: float) -> Jurisdiction | None:
        """The deepest node holding the point or nearest to it; None outside the county."""
        found = self.places.find(lon, lat)
        return self._nodes.get(found.code) if found is not None else None

    def centre(self, code: str) -> Lonlat | None:
        """The node's point on the map, (longitude, latitude), if the data places it."""
        return self._centres.get(code)

    def boundary(self, code: str) -> tuple[Lonlat, ...]:
        """The node's boundary, [longitude, latitude] corners in order; () without one."""
        return self.places.boundary(code)

    def by_address(self, address: str) -> Jurisdiction | None:
        """The most specific node an address names without doubt.

        Two villages of the same name in different towns are told apart by the town named
        beside them; when still in doubt the answer is the nearest node they share.
        """
        if address in self._address_cache:
            return self._address_cache[address]
        node = self._read_address(address)
        if len(self._address_cache) >= _ADDRESS_CACHE_SIZE:
            self._address_cache.clear()
        self._address_cache[address] = node
        return node

    def _read_address(self, address: str) -> Jurisdiction | None:
        hits = self._names.find(normalise(address))
        if not hits:
            return None
        # A longer name swallows a shorter one inside it: 枫桥村 is not also 枫桥 (the town).
        spans = {(hit.start, hit.end) for found in hits.values() for hit in found}
        whole = {span for span in spans
                 if not any(other != span and other[0] <= span[0] and span[1] <= other[1]
                            for other in spans)}
        named = [self._nodes[code] for code, found in hits.items()
                 if any((hit.start, hit.end) in whole for hit in found)]
        deepest = max(node.level.depth for node in named)
        candidates = [node for node in named if node.level.depth == deepest]
        supporting = [node for node in named if node.level.depth < deepest]
        if supporting:
            consistent = [node for node in candidates
                          if all(self.is_within(node.code, other.code) for other in supporting)]
            candidates = consistent or candidates
        return self._common_ancestor(candidates)

    def locate(self, report: CaseReported) -> Location | None:
        """Where a case is: its codes first (grid, region, station, court), refined by its
        coordinates or address.

        A code is authoritative; coordinates or an address only narrow it to a node below it.
        Without a village's or grid's code, coordinates inside the county decide (a grid
        worker's phone knows better than a typed address); then the address; without
        codes, coordinates or an address: where the parties live, else a place the text names.
        """
        by_code: Location | None = None
        for source, code, find in (
            ("grid_code", report.grid_code, self.by_code),
            ("region_code", report.region_code, self.by_code),
            ("station_code", report.station_code, self.by_station),
            ("court_code", report.court_code, self.by_court),
        ):
            if code:
                node = find(code)
                if node is not None:
                    by_code = Location(node, source)
                    break
        if by_code is not None and by_code.node.level.depth >= Level.VILLAGE.depth:
            return by_code
        if report.location is not None:
            node = self.by_point(report.location.lat, report.location.lon)
            # Coordinates that contradict a code are a bad fix or a typo: the code stands.
            if node is not None and (by_code is None
                                     or self.is_within(node.code, by_code.node.code)):
                return Location(node, "coordinates")
        by_words: Location | None = None
        if report.address:
            node = self.by_address(report.address)
            by_words = Location(node, "address") if node is not None else None
        if by_words is None and by_code is None:
            # The parties' addresses: the nearest node they all share.
            parties = [node for node in (self.by_address(party.address)
                                         for party in (report.reporter, *report.parties)
                                         if party is not None and party.address)
                       if node is not None]
            node = self._common_ancestor(parties)
            by_words = Location(node, "parties") if node is not None else None
        if by_words is None and by_code is None:
            # Last resort: a place the report's text names (枫桥镇新华村村民反映...).
            node = self.by_address(report.text)
            by_words = Location(node, "text") if node is not None else None
        if by_code is None:
            return by_words
        if (by_words is not None and by_words.node.level.depth > by_code.node.level.depth
                and self.is_within(by_words.node.code, by_code.node.code)):
            return by_words
        return by_code

    def parties_apart(self, addresses: Iterable[str]) -> Level | None:
        """`town` when the addresses lie in different towns, `village` in different villages."""
        towns: set[str] = set()
        villages: set[str] = set()
        for address in addresses:
            node = self.by_address(address)
            if node is None:
                continue
            if node.level.depth >= Level.TOWN.depth:
                towns.add(self.at_level(node, Level.TOWN).code)
            if node.level.depth >= Level.VILLAGE.depth:
                villages.add(self.at_level(node, Level.VILLAGE).code)
        if len(towns) > 1:
            return Level.TOWN
        if len(villages) > 1:
            return Level.VILLAGE
        return None

    def _common_ancestor(self, nodes: list[Jurisdiction]) -> Jurisdiction | None:
        if not nodes:
            return None
        shared = self._lineage[nodes[0].code]
        for node in nodes[1:]:
            chain = self._lineage[node.code]
            common = 0
            while common < min(len(shared), len(chain)) and shared[common] == chain[common]:
                common += 1
            shared = shared[:common]
        return self._nodes[shared[-1]] if shared else None


def load_jurisdictions(path: str | Path) -> JurisdictionTree:
    """Read and validate a jurisdictions file; JurisdictionsError lists every problem."""
    return parse_jurisdictions(read_yaml(path, JurisdictionsError), source=str(path))


def parse_jurisdictions(data: Any, *, source: str = "<jurisdictions>") -> JurisdictionTree:
    """Build the tree from already-parsed data, checking codes nest and offices point at nodes."""
    data = require_mapping(data, source, JurisdictionsError)
    try:
        parsed = _JurisdictionsFile.model_validate(data)
    except ValidationError as exc:
        raise JurisdictionsError(source, describe(exc)) from None
    problems: list[str] = []
    nodes: list[Jurisdiction] = []
    names: dict[str, list[str]] = {}
    seen: dict[str, str] = {}

    def add(path: str, code: str, name: str, aliases: list[str], level: Level,
            parent: str | None) -> None:
        if code in seen:
            problems.append(f"{path}.code: {code} is already used at {seen[code]}")
            return
        if parent is not None and not code.startswith(parent):
            problems.append(f"{path}.code: {code} does not start with its parent's code {parent}")
        if len(code) != _CODE_LENGTH[level]:
            problems.append(f"{path}.code: a {level.value} code has {_CODE_LENGTH[level]} digits")
        seen[code] = path
        nodes.append(Jurisdiction(code=code, name=name, level=level, parent=parent))
        if level != Level.GRID:
            names[code] = [term for term in (normalise(n) for n in (name, *aliases)) if term]

    county = parsed.county
    add("county", county.code, county.name, county.aliases, Level.COUNTY, None)
    for t, town in enumerate(parsed.towns):
        add(f"towns[{t}]", town.code, town.name, town.aliases, Level.TOWN, county.code)
        for v, village in enumerate(town.villages):
            path = f"towns[{t}].villages[{v}]"
            add(path, village.code, village.name, village.aliases, Level.VILLAGE, town.code)
            for g, grid in enumerate(village.grids):
                add(f"{path}.grids[{g}]", grid.code, grid.name, [], Level.GRID, village.code)
    shapes: list[Shape] = []

    def shape(path: str, code: str, parent: str, depth: int, shaped: _Shaped) -> None:
        if shaped.boundary is None and shaped.centre is None:
            return
        if shaped.boundary is not None and len(set(shaped.boundary)) < 3:
            problems.append(f"{path}.boundary: needs at least 3 different corners")
            return
        shapes.append(Shape(code=code, parent=parent, depth=depth,
                            boundary=tuple(shaped.boundary or ()), centre=shaped.centre))

    for t, town in enumerate(parsed.towns):
        for v, village in enumerate(town.villages):
            path = f"towns[{t}].villages[{v}]"
            shape(path, village.code, town.code, Level.VILLAGE.depth, village)
            for g, grid in enumerate(village.grids):
                shape(f"{path}.grids[{g}]", grid.code, village.code, Level.GRID.depth, grid)
    offices: dict[str, dict[str, str]] = {}
    for kind, listed in (("police_stations", parsed.police_stations),
                         ("courts", parsed.courts)):
        offices[kind] = {}
        for i, office in enumerate(listed):
            if office.jurisdiction not in seen:
                problems.append(f"{kind}[{i}].jurisdiction: {office.jurisdiction} is not a node "
                                "of the tree")
            if office.code in offices[kind]:
                problems.append(f"{kind}[{i}].code: {office.code} is listed twice")
            offices[kind][office.code] = office.jurisdiction
    if problems:
        raise JurisdictionsError(source, problems)
    return JurisdictionTree(parsed.version, nodes, offices["police_stations"], offices["courts"],
                            names, PlaceIndex(shapes, parsed.places.max_distance_m))

