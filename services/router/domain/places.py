"""Where on the map: a report's coordinates to the jurisdiction that holds them.

A county is small enough for a plane: longitudes and latitudes are projected
equirectangularly around the county's middle latitude (metres east and north), where the
error over 50 km is well under a metre in a hundred. A point lies in a node whose boundary
(a simple polygon) holds it; else the nearest boundary or centre wins, if it is no farther
than the file's `max_distance_m` (beyond it the point is outside the county). The node
found is then narrowed to its child grid that holds the point, else the nearest one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

EARTH_RADIUS_M = 6_371_008.8
Lonlat = tuple[float, float]
Xy = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Shape:
    """A node's place: its boundary (corners in order, not repeated at the end), its centre,
    or both. The centre of a boundary without one is the average of its corners."""

    code: str
    parent: str | None
    depth: int
    boundary: tuple[Lonlat, ...] = ()
    centre: Lonlat | None = None

    def middle(self) -> Lonlat:
        if self.centre is not None:
            return self.centre
        return (sum(p[0] for p in self.boundary) / len(self.boundary),
                sum(p[1] for p in self.boundary) / len(self.boundary))


@dataclass(frozen=True, slots=True)
class Found:
    code: str
    distance_m: float  # 0 inside a boundary


class Plane:
    """Equirectangular projection around one latitude: (lon, lat) → metres (east, north)."""

    def __init__(self, reference_lat: float) -> None:
        self._x = math.radians(1) * EARTH_RADIUS_M * math.cos(math.radians(reference_lat))
        self._y = math.radians(1) * EARTH_RADIUS_M

    def project(self, point: Lonlat) -> Xy:
        return point[0] * self._x, point[1] * self._y


def contains(polygon: Sequence[Xy], point: Xy) -> bool:
    """Ray casting: a point on the boundary counts as inside (it is 0 m from it anyway)."""
    x, y = point
    inside = False
    for (x1, y1), (x2, y2) in zip(polygon, (*polygon[1:], polygon[0]), strict=True):
        if _distance_to_segment(point, (x1, y1), (x2, y2)) < 1e-9:
            return True
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def distance_to_boundary(polygon: Sequence[Xy], point: Xy) -> float:
    return min(_distance_to_segment(point, a, b)
               for a, b in zip(polygon, (*polygon[1:], polygon[0]), strict=True))


def _distance_to_segment(p: Xy, a: Xy, b: Xy) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy)
                                                 / length2))
    return math.hypot(p[0] - (a[0] + t * dx), p[1] - (a[1] + t * dy))


class PlaceIndex:
    """The shaped nodes of a tree, projected once; `find(lon, lat)` answers the deepest."""

    def __init__(self, shapes: Iterable[Shape], max_distance_m: float) -> None:
        self._shapes = {shape.code: shape for shape in shapes}
        self.max_distance_m = max_distance_m
        lats = [lat for shape in self._shapes.values()
                for _, lat in (*shape.boundary, shape.middle())]
        self._plane = Plane((min(lats) + max(lats)) / 2 if lats else 0.0)
        self._polygons = {code: [self._plane.project(p) for p in shape.boundary]
                          for code, shape in self._shapes.items() if len(shape.boundary) >= 3}
        self._centres = {code: self._plane.project(shape.middle())
                         for code, shape in self._shapes.items()}
        self._children: dict[str, list[str]] = {}
        for shape in self._shapes.values():
            if shape.parent in self._shapes:
                self._children.setdefault(shape.parent, []).append(shape.code)

    def __bool__(self) -> bool:
        return bool(self._shapes)

    def centre(self, code: str) -> Lonlat | None:
        shape = self._shapes.get(code)
        return shape.middle() if shape is not None else None

    def boundary(self, code: str) -> tuple[Lonlat, ...]:
        shape = self._shapes.get(code)
        return shape.boundary if shape is not None else ()

    def find(self, lon: float, lat: float) -> Found | None:
        """The node holding the point or nearest to it (None beyond the maximum distance),
        narrowed to the child (a grid) holding it or nearest to it."""
        point = self._plane.project((lon, lat))
        best = self._nearest(self._shapes, point)
        if best is None or best.distance_m > self.max_distance_m:
            return None
        while children := self._children.get(best.code):
            inner = self._nearest(children, point)
            if inner is None:
                break
            best = Found(inner.code, best.distance_m)
        return best

    def _nearest(self, codes: Iterable[str], point: Xy) -> Found | None:
        # Inside beats near; between two that hold it, the deeper (a grid within its village).
        best: tuple[float, int, str] | None = None
        for code in codes:
            distance = self._distance(code, point)
            key = (distance, -self._shapes[code].depth, code)
            if best is None or key < best:
                best = key
        return Found(best[2], best[0]) if best is not None else None

    def _distance(self, code: str, point: Xy) -> float:
        polygon = self._polygons.get(code)
        if polygon is not None:
            return 0.0 if contains(polygon, point) else distance_to_boundary(polygon, point)
        centre = self._centres[code]
        return math.hypot(point[0] - centre[0], point[1] - centre[1])
