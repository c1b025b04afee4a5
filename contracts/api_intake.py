"""Intake's REST models that other platforms use: single and batch submission answers, and
the Open311 GeoReport v2 responses (https://wiki.open311.org/GeoReport_v2)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.times import Moment

MAX_BATCH_ITEMS = 1000


class ItemStatus(StrEnum):
    """What became of one submitted report."""

    ACCEPTED = "accepted"  # a new case
    DUPLICATE = "duplicate"  # the same report again: the first case's id, nothing created
    CONFLICT = "conflict"  # the same external id with different content: nothing created
    INVALID = "invalid"  # failed validation: see `fields`


class Accepted(BaseModel):
    """The answer to a single submission: 202 accepted, or 200 duplicate."""

    case_id: str
    status: ItemStatus = Field(examples=["accepted"])


class ItemError(BaseModel):
    field: str = Field(description="Where in the item, e.g. `parties.0.phone`")
    reason: str


class IntakeBatch(BaseModel):
    """Up to 1,000 native payloads of one channel; each is validated on its own, so one
    bad item does not fail the others."""

    items: list[Any] = Field(min_length=1, max_length=MAX_BATCH_ITEMS,
                             description="Native payloads of the channel in the path")


class BatchItemResult(BaseModel):
    index: int = Field(description="The item's position in `items`, from 0")
    status: ItemStatus
    external_id: str | None = Field(default=None,
                                    description="The item's external id, when it has one")
    case_id: str | None = Field(default=None, description="The new case (accepted), the first "
                                "case (duplicate) or the case the id belongs to (conflict)")
    fields: list[ItemError] = Field(default_factory=list, description="Why it is invalid")


class BatchResult(BaseModel):
    accepted: int
    duplicates: int
    conflicts: int
    invalid: int
    results: list[BatchItemResult]


class ReportLookup(BaseModel):
    """Which case a channel's report became (for systems that submit over Kafka)."""

    channel: str
    external_id: str
    case_id: str
    received_at: Moment


# --- Open311 GeoReport v2 -------------------------------------------------------------------

class _Open311(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Open311Service(_Open311):
    """One entry of services.json: a DOMAIN.md dispute category."""

    service_code: str
    service_name: str
    description: str
    metadata: bool = Field(description="True when the service has attributes (none here)")
    type: str = Field(description="realtime, batch or blackbox")
    keywords: str
    group: str


class Open311ServiceDefinition(_Open311):
    service_code: str
    attributes: list[dict[str, Any]] = Field(default_factory=list)


class Open311Created(_Open311):
    """The answer to POST requests.json (a list of one)."""

    service_request_id: str
    token: str
    service_notice: str | None = None
    account_id: str | None = None


class Open311Token(_Open311):
    service_request_id: str
    token: str


class Open311ServiceRequest(_Open311):
    """A request as GET requests.json shows it: public fields only (no name, phone, email
    or device id)."""

    service_request_id: str
    status: str = Field(description="open or closed")
    status_notes: str | None = None
    service_name: str
    service_code: str
    description: str
    agency_responsible: str | None = None
    service_notice: str | None = None
    requested_datetime: str
    updated_datetime: str
    expected_datetime: str | None = None
    address: str | None = None
    address_id: str | None = None
    zipcode: str | None = None
    lat: float | None = None
    long: float | None = None
    media_url: str | None = None


class Open311DiscoveryEndpoint(_Open311):
    """One API of discovery.json/.xml (https://wiki.open311.org/Service_Discovery)."""

    specification: str = Field(description="The spec's URL: http://wiki.open311.org/GeoReport_v2")
    url: str = Field(description="The endpoint's base URL (…/open311/v2)")
    changeset: str = Field(description="W3C datetime of the last change to the services")
    type: str = Field(description="production or test")
    formats: list[str] = Field(description="MIME types served: text/xml, application/json")


class Open311Discovery(_Open311):
    """The service discovery document."""

    changeset: str
    contact: str
    key_service: str = Field(description="How to get an api_key")
    endpoints: list[Open311DiscoveryEndpoint]


class Open311Error(_Open311):
    """The spec's error entry; an error answer is a JSON list of these."""

    code: int
    description: str
