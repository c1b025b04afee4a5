"""Native payloads of the intake channels, exactly as the source systems send them, with the
natural limits of each field: text lengths, amounts, dates with offsets, phone numbers,
resident id numbers (check digit verified) and administrative division codes."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    UrlConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from contracts.enums import PartyRole, Urgency
from contracts.events import GeoPoint
from kit import privacy

# Re-exported: the contracts' validators are kit.privacy's normaliser.
from kit.privacy import id_number_check_character as id_number_check_character
from kit.privacy import normalise_phone as normalise_phone

_ID_NUMBER = re.compile(r"^[0-9]{17}[0-9X]$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def printable(value: str) -> str:
    """Refuse control characters (NUL and the like; tabs and line breaks are text): no
    source sends them on purpose, and no database or downstream system wants them."""
    if _CONTROL.search(value):
        raise ValueError("contains control characters (such as NUL)")
    return value


def normalise_id_number(value: str) -> str:
    """An 18-character resident id number (GB 11643-1999) with a final upper-case X, read
    through kit.privacy's normaliser (groups, full-width digits); raise ValueError, without
    repeating the number, when it is malformed. First-generation 15-digit numbers have
    expired: refused here, though free text's are still masked."""
    number = re.sub(r"[ .\-]", "", privacy.shadow(value)).upper()
    if not _ID_NUMBER.match(number):
        raise ValueError("not an 18-character resident id number (17 digits, then a digit or X)")
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise ValueError("characters 7-14 of the id number are not a birth date (YYYYMMDD)"
                         ) from None
    if born.year < 1880 or born > date.today():
        raise ValueError("the birth date in the id number (characters 7-14) is out of range")
    if id_number_check_character(number[:17]) != number[17]:
        raise ValueError("the id number's check character (the last one) is wrong (GB 11643)")
    return number


# What source systems write for a party's role, in their own words.
_ROLE_NAMES = {
    "报告人": PartyRole.REPORTER, "反映人": PartyRole.REPORTER, "来电人": PartyRole.REPORTER,
    "申请人": PartyRole.APPLICANT, "被申请人": PartyRole.RESPONDENT,
    "原告": PartyRole.PLAINTIFF, "被告": PartyRole.DEFENDANT,
    "信访人": PartyRole.PETITIONER, "上访人": PartyRole.PETITIONER,
    "当事人": PartyRole.OTHER, "第三人": PartyRole.OTHER, "其他": PartyRole.OTHER,
}


def _role_from_name(value: Any) -> Any:
    if isinstance(value, str):
        return _ROLE_NAMES.get(value.strip(), value.strip().lower())
    return value


def plausible_time(value: datetime) -> datetime:
    """Refuse times outside 1900-2099: a typo, and date arithmetic on them would overflow."""
    if not 1900 <= value.year < 2100:
        raise ValueError("the year is outside 1900-2099")
    return value


Text = Annotated[str, AfterValidator(printable)]
Url = Annotated[HttpUrl, UrlConstraints(max_length=2048)]
Moment = Annotated[AwareDatetime, AfterValidator(plausible_time),
                   Field(description="ISO 8601 with offset, e.g. 2026-11-20T08:00:00+08:00")]
Phone = Annotated[str, Field(max_length=32, description="Mainland mobile (13800138000, +86 "
                                                        "138 0013 8000) or landline (010-12345678)"),
                  AfterValidator(normalise_phone)]
IdNumber = Annotated[str, Field(max_length=32, description="Resident id number (GB 11643)"),
                     AfterValidator(normalise_id_number)]
RegionCode = Annotated[str, Field(pattern=r"^\d{6}(\d{3}(\d{3})?)?$",
                                  description="Administrative division code: 6, 9 or 12 digits")]
GridCode = Annotated[str, Field(pattern=r"^\d{15}$",
                                description="网格编码: the 12-digit village code plus 3 digits")]
OfficeCode = Annotated[str, Field(pattern=r"^[0-9A-Za-z]{2,32}$",
                                  description="A police station's or court's own code")]
ExternalId = Annotated[str, Field(min_length=1, max_length=64,
                                  pattern=r"^[\w\-./#()（）〔〕\[\]]+$",
                                  description="The source system's own id: letters, digits, "
                                  "Chinese characters and - . / # ( ) （ ） 〔 〕 [ ]")]
ReportText = Annotated[Text, Field(min_length=1, max_length=5000)]
PersonName = Annotated[Text, Field(max_length=64)]
Address = Annotated[Text, Field(max_length=256)]
Classification = Annotated[Text, Field(max_length=64,
                                      description="The source system's own classification")]
Amount = Annotated[float, Field(ge=0, le=1e12, description="Money in CNY, not negative")]
PeopleCount = Annotated[int, Field(ge=0, le=1_000_000)]
Role = Annotated[PartyRole, BeforeValidator(_role_from_name), WithJsonSchema({
    "type": "string", "enum": [r.value for r in PartyRole] + list(_ROLE_NAMES),
    "description": "A role code, or its Chinese name (原告, 被告, 申请人, ...)"})]


class NativePayload(BaseModel):
    """Common behaviour of every native payload: unknown fields are ignored, text is
    trimmed, and an optional field sent as an empty string counts as absent (hotline
    systems often send "" for "not known")."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_absent(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {key: value for key, value in data.items()
                if not (isinstance(value, str) and not value.strip()
                        and key in cls.model_fields and not cls.model_fields[key].is_required())}


class Party(NativePayload):
    """A person in a case as a source system names them."""

    name: PersonName | None = None
    role: Role | None = Field(default=None, description="Defaults to the list the party is in")
    phone: Phone | None = None
    id_number: IdNumber | None = None
    address: Address | None = None


Parties = Annotated[list[Party], Field(max_length=100)]


class HotlineWorkOrder(NativePayload):
    """A 12345 hotline work order (工单) as the hotline system sends it."""

    order_no: ExternalId = Field(description="The hotline's work order number (工单编号)")
    content: ReportText = Field(description="诉求内容")
    received_at: Moment = Field(description="When the hotline took the call, with offset")
    caller_name: PersonName | None = None
    caller_phone: Phone | None = None
    category: Classification | None = Field(
        default=None, description="The hotline's own classification text")
    urgency: Urgency = Urgency.NORMAL
    address: Address | None = None
    region_code: RegionCode | None = None
    deadline: Moment | None = None
    callback_url: Url | None = Field(default=None, description="办结反馈 URL")

    @field_validator("deadline")
    @classmethod
    def _deadline_after_receipt(cls, deadline: datetime | None, info: ValidationInfo
                                ) -> datetime | None:
        received = info.data.get("received_at")
        if deadline is not None and received is not None and deadline < received:
            raise ValueError("the deadline is before received_at")
        return deadline


class GridReport(NativePayload):
    """An event a grid worker (网格员) reports from their grid. The grid code, or only the
    coordinates where the worker stood (a phone's fix): the router finds the village and
    grid from them (docs/routing.md "Where a case is")."""

    report_id: ExternalId = Field(description="The grid system's report id")
    # Before grid_code: its check needs to know whether coordinates came.
    location: GeoPoint | None = Field(default=None, description="WGS 84 degrees; enough "
                                      "without grid_code")
    grid_code: GridCode | None = Field(default=None, validate_default=True,
                                       description="Required unless location is given")
    description: ReportText
    reporter_id: Text | None = Field(default=None, max_length=64,
                                    description="The grid worker's staff id (not an id number)")
    reporter_name: PersonName | None = None
    event_type: Classification | None = Field(default=None,
                                              description="The grid system's event type")
    occurred_at: Moment | None = None
    address: Address | None = None
    people_involved: PeopleCount | None = None
    parties: Parties = Field(default_factory=list)
    photos: list[Url] = Field(default_factory=list, max_length=20)

    @field_validator("grid_code")
    @classmethod
    def _grid_or_coordinates(cls, grid_code: str | None, info: ValidationInfo) -> str | None:
        # A location that failed validation is not in info.data: its own error says why.
        if grid_code is None and "location" in info.data and info.data["location"] is None:
            raise ValueError("grid_code is required unless location (lat, lon) is given")
        return grid_code


class PoliceReferral(NativePayload):
    """A dispute the police refer to mediation (警调对接), from 110 or a police station."""

    incident_no: ExternalId = Field(description="The police incident number (警情编号)")
    summary: ReportText
    station_code: OfficeCode | None = None
    station_name: Text | None = Field(default=None, max_length=128)
    officer_name: PersonName | None = None
    dispute_type: Classification | None = Field(default=None, description="警情纠纷类型")
    occurred_at: Moment | None = None
    address: Address | None = None
    region_code: RegionCode | None = None
    parties: Parties = Field(default_factory=list)
    injuries: bool | None = None


class CourtReferral(NativePayload):
    """A court's pre-litigation mediation referral (诉前调解委派)."""

    case_no: ExternalId = Field(description="案号, e.g. (2026)浙0699民诉前调1234号")
    summary: ReportText
    court_code: OfficeCode | None = None
    court_name: Text | None = Field(default=None, max_length=128)
    cause: Classification | None = Field(default=None, description="案由, e.g. 民间借贷纠纷")
    claim_amount: Amount | None = Field(default=None, description="标的额, CNY")
    plaintiffs: Parties = Field(default_factory=list)
    defendants: Parties = Field(default_factory=list)
    referred_at: Moment | None = None
    mediation_deadline: Moment | None = Field(
        default=None, description="Default: referred_at + 30 days")

    @field_validator("mediation_deadline")
    @classmethod
    def _deadline_after_referral(cls, deadline: datetime | None, info: ValidationInfo
                                 ) -> datetime | None:
        referred = info.data.get("referred_at")
        if deadline is not None and referred is not None and deadline < referred:
            raise ValueError("the mediation deadline is before referred_at")
        return deadline


class PetitionReferral(NativePayload):
    """A petition (信访) referred to mediation (访调对接)."""

    petition_no: ExternalId = Field(description="信访件编号")
    content: ReportText
    petitioners: Parties = Field(default_factory=list)
    people_count: PeopleCount | None = None
    region_code: RegionCode | None = None


class WalkInVisit(NativePayload):
    """A person at the centre's reception window (来访窗口). The window has no id of its
    own: intake generates one, unless the window system sends `visit_id` (its visit
    number or any idempotency key) so that a retried submission is not doubled."""

    visit_id: ExternalId | None = Field(
        default=None, description="Optional: the window system's visit number or an "
        "idempotency key; the same visit_id again returns the first case")
    content: ReportText = Field(description="诉求内容")
    visited_at: Moment | None = Field(default=None,
                                             description="Default: when intake received it")
    visitor: Party | None = Field(default=None, description="The person at the window")
    parties: Parties = Field(default_factory=list)
    people_count: PeopleCount | None = None
    category: Classification | None = None
    urgency: Urgency = Urgency.NORMAL
    address: Address | None = None
    region_code: RegionCode | None = None
    grid_code: GridCode | None = None


class Open311Request(NativePayload):
    """The fields of an Open311 GeoReport v2 `POST requests` (form-encoded). `api_key` is
    the credential: it is checked, never stored. A location is required: lat and long,
    or address_string, or address_id."""

    jurisdiction_id: Text | None = Field(default=None, max_length=64)
    service_code: Text = Field(min_length=1, max_length=64)
    lat: float | None = Field(default=None, ge=-90, le=90)
    long: float | None = Field(default=None, ge=-180, le=180)
    address_string: Address | None = None
    address_id: Text | None = Field(default=None, max_length=64)
    email: Text | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    device_id: Text | None = Field(default=None, max_length=128)
    account_id: Text | None = Field(default=None, max_length=128)
    first_name: PersonName | None = None
    last_name: PersonName | None = None
    phone: Phone | None = None
    description: Text = Field(min_length=1, max_length=4000)
    media_url: Url | None = None

    @model_validator(mode="after")
    def _located(self) -> Self:
        if (self.lat is None) != (self.long is None):
            raise ValueError("lat and long go together: send both or neither")
        if self.lat is None and not self.address_string and not self.address_id:
            raise ValueError("a location is required: lat and long, address_string or "
                             "address_id")
        return self
