"""Where a case is on the map, from what mediation is told: the report's own coordinates
(a grid worker's fix, an Open311 lat/long) first; else the centre of the place the router
found (its village or grid, from the jurisdiction data), so that a case reported by
address is on the map too. `position` says which, for the map to draw them apart."""

from __future__ import annotations

from typing import Any

from contracts.events import CaseReported, RoutingDecision

REPORTED = "reported"  # the report's coordinates: personal data, emptied on erasure
PLACE = "place"  # the centre of its village or grid: no one's location


def reported_position(report: CaseReported) -> dict[str, Any]:
    """The case fields the report's coordinates set (none without coordinates)."""
    if report.location is None:
        return {}
    return {"lat": report.location.lat, "lon": report.location.lon, "position": REPORTED}


def routed_position(position: str | None, decision: RoutingDecision) -> dict[str, Any]:
    """The case fields a routing decision sets: the place's code, and its centre unless the
    report's own coordinates are there. A decision without a place (made before the router
    reported places) changes nothing."""
    place = decision.place
    if place is None:
        return {}
    changes: dict[str, Any] = {"place_code": place.code}
    if position != REPORTED:
        centre = place.centre
        changes.update(lat=centre.lat if centre else None, lon=centre.lon if centre else None,
                       position=PLACE if centre else None)
    return changes


def erased_position(decision: dict[str, Any] | None) -> dict[str, Any]:
    """After erasure: the place's centre instead of the report's coordinates (or nothing)."""
    place = RoutingDecision.model_validate(decision).place if decision else None
    centre = place.centre if place else None
    if centre is None:
        return {"lat": None, "lon": None, "position": None}
    return {"lat": centre.lat, "lon": centre.lon, "position": PLACE}



Box = tuple[float, float, float, float]


def parse_bbox(text: str) -> Box:
    """`min_lon,min_lat,max_lon,max_lat` in degrees (GeoJSON's and OGC's order); ValueError
    says what is wrong. A box across the antimeridian is not needed in a county: refused."""
    parts = text.split(",")
    if len(parts) != 4:
        raise ValueError("four numbers separated by commas: min_lon,min_lat,max_lon,max_lat")
    try:
        min_lon, min_lat, max_lon, max_lat = (float(part) for part in parts)
    except ValueError:
        raise ValueError("each of the four values must be a number") from None
    if not all(-180 <= lon <= 180 for lon in (min_lon, max_lon)):
        raise ValueError("longitudes must be between -180 and 180")
    if not all(-90 <= lat <= 90 for lat in (min_lat, max_lat)):
        raise ValueError("latitudes must be between -90 and 90")
    if min_lon > max_lon or min_lat > max_lat:
        raise ValueError("the minimum must not exceed the maximum (min_lon,min_lat,max_lon,"
                         "max_lat)")
    return min_lon, min_lat, max_lon, max_lat
