"""Open311 service discovery (https://wiki.open311.org/Service_Discovery): where the
GeoReport v2 endpoint is, in which formats, whom to ask, and how to get a key."""

from __future__ import annotations

from contracts.api_intake import Open311Discovery, Open311DiscoveryEndpoint
from services.intake.open311.formats import MEDIA_TYPES, Format

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
# When the services (SERVICES in domain.py) or their definitions last changed: clients
# refresh their cached service lists when it moves. Change it with them.
CATALOGUE_CHANGESET = "2026-12-07T00:00:00Z"


def discovery(endpoint_url: str, *, production: bool, contact: str, key_service: str
              ) -> Open311Discovery:
    """One endpoint, GeoReport v2 at `endpoint_url`; `type` is production only in the
    production environment, test everywhere else."""
    return Open311Discovery(
        changeset=CATALOGUE_CHANGESET, contact=contact, key_service=key_service,
        endpoints=[Open311DiscoveryEndpoint(
            specification=SPECIFICATION, url=endpoint_url, changeset=CATALOGUE_CHANGESET,
            type="production" if production else "test",
            formats=[MEDIA_TYPES[Format.XML], MEDIA_TYPES[Format.JSON]])])
