"""Open311 GeoReport v2 routes: /open311/v2/ (the API) and /open311/discovery (service
discovery, also at /open311/v2/discovery). Every resource in XML, the spec's required
format, and JSON (formats.py). Errors are the spec's list of {code, description}, not
fengqiao's error format, so that existing Open311 clients understand them; arguments are
therefore parsed here rather than by FastAPI."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import ValidationError

from contracts.api_intake import (
    Open311Created,
    Open311Discovery,
    Open311Error,
    Open311Service,
    Open311ServiceDefinition,
    Open311ServiceRequest,
    Open311Token,
)
from contracts.channels import Open311Request
from contracts.enums import Channel
from kit.auth import KeyStore, Principal, Scope
from kit.errors import field_errors
from kit.ratelimit import retry_after
from kit.runtime import Runtime
from services.intake.open311 import jurisdictions
from services.intake.open311.discovery import discovery
from services.intake.open311.domain import (
    SERVICES,
    QueryError,
    RequestQuery,
    is_plausible_id,
    parse_query,
)
from services.intake.open311.formats import (
    MEDIA_TYPES,
    Format,
    Open311Failure,
    format_of,
    format_of_path,
    render,
    render_failure,
    to_xml,
)
from services.intake.open311.handlers import file_request, find_requests, find_token

__all__ = ["Open311Failure", "open311_error", "router"]

ROOT = "/open311"
PREFIX = f"{ROOT}/v2"
FORM = "application/x-www-form-urlencoded"
XML = MEDIA_TYPES[Format.XML]

Fmt = Annotated[str, Path(description="xml (the spec's required format) or json; any other "
                          "is 404", json_schema_extra={"enum": ["xml", "json"]})]
JurisdictionId = Annotated[str | None, Query(
    description="Optional: the county's division code or one of its towns' or villages'; "
    "an unknown one is 404")]


async def open311_error(request: Request, exc: Exception) -> Response:
    """The spec's error list, in the format the path's extension asks for (XML otherwise)."""
    assert isinstance(exc, Open311Failure)
    return render_failure(format_of_path(request.url.path), exc)


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _check_jurisdiction(request: Request, jurisdiction_id: str | None) -> None:
    """An unknown jurisdiction_id is the spec's 404; none at all means the county."""
    if not jurisdiction_id:
        return
    known = jurisdictions.load(_runtime(request).settings.jurisdictions_path)
    if jurisdiction_id not in known:
        raise Open311Failure(404, f"jurisdiction_id '{jurisdiction_id[:64]}' not found: use the "
                             f"county's code {known.county} or one of its towns' or villages' "
                             "codes")


async def _principal(request: Request, api_key: str | None) -> Principal | None:
    """The key from the spec's api_key argument, or from an Authorization: Bearer header."""
    token = api_key
    header = request.headers.get("authorization", "")
    if not token and header.lower().startswith("bearer "):
        token = header[7:].strip()
    if not token:
        return None
    keys: KeyStore = request.app.state.keys
    return await keys.principal(token)


async def _require_reader(request: Request) -> None:
    """Reads are public unless FQ_OPEN311_PUBLIC_READ=false; then a key that may read cases
    or file requests is needed."""
    if _runtime(request).settings.open311_public_read:
        return
    principal = await _principal(request, request.query_params.get("api_key"))
    if principal is None:
        raise Open311Failure(403, "an api_key is required to read requests")
    if not (principal.allows(Scope.CASES_READ) or principal.allows(Scope.INTAKE_WRITE)):
        raise Open311Failure(403, "this api_key may not read requests")


async def _form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise Open311Failure(400, f"send the request as {FORM}")
    try:
        fields = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True,
                          strict_parsing=False, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise Open311Failure(400, "the form is not UTF-8 form-encoded data") from None
    # attribute[...] fields belong to services with metadata; none of ours has any.
    return {name: values[0] for name, values in fields.items() if values}


def _form_schema() -> dict[str, Any]:
    schema = Open311Request.model_json_schema()
    schema["properties"] = {"api_key": {"type": "string", "description": "A key with scope "
                                        "intake:write"}, **schema["properties"]}
    schema["required"] = ["api_key", *schema.get("required", [])]
    return {"requestBody": {"required": True, "content": {FORM: {"schema": schema}}}}


# --- OpenAPI: both formats of every answer, the XML examples made by the same code ----------

_EXAMPLE_SERVICE = SERVICES["neighbor"].listing()
_EXAMPLE_REQUEST = Open311ServiceRequest(
    service_request_id="FQ20261207-1A2B3C4D5E6F7081", status="open",
    status_notes="调解中 In mediation", service_name=SERVICES["neighbor"].name,
    service_code="neighbor", description="楼上深夜噪音扰民", agency_responsible="judicial_office",
    requested_datetime="2026-12-07T01:00:00+00:00", updated_datetime="2026-12-07T02:00:00+00:00",
    address="城关街道江滨社区3幢", lat=29.7102, long=120.2411)
_ERRORS = {400: "lat: Input should be a valid number, unable to parse string as a number",
           403: "a valid api_key is required",
           404: "jurisdiction_id '110101' not found: use the county's code 330699 or one of "
                "its towns' or villages' codes",
           429: "this api_key sends requests too fast; retry in 2 s"}


def _xml(root: str, content: Any) -> dict[str, Any]:
    return {XML: {"schema": {"type": "string"}, "example": to_xml(root, content).decode()}}


def _answers(success: int, root: str, example: Any, *statuses: int
             ) -> dict[int | str, dict[str, Any]]:
    """The success answer in XML beside the response model's JSON, and the spec's error list
    in both formats for `statuses` plus 404 (an unknown format or jurisdiction)."""
    errors: dict[int | str, dict[str, Any]] = {
        status: {"model": list[Open311Error], "description": "the spec's error list",
                 "content": _xml("errors", [Open311Error(
                     code=status, description=_ERRORS[status]).model_dump()])}
        for status in sorted({404, *statuses})}
    return {success: {"content": _xml(root, example)}, **errors}


router = APIRouter(tags=["open311"])


async def _discovery(request: Request, fmt: str, jurisdiction_id: str | None) -> Response:
    answer_in = format_of(fmt)
    _check_jurisdiction(request, jurisdiction_id)
    settings = _runtime(request).settings
    endpoint = str(request.base_url).rstrip("/") + PREFIX
    return render(answer_in, "discovery", discovery(
        endpoint, production=settings.environment == "production",
        contact=settings.open311_contact, key_service=settings.open311_key_service))


_DISCOVERY_EXAMPLE = discovery("https://fengqiao.example.cn/open311/v2", production=True,
                               contact="…", key_service="…").model_dump()


@router.get(f"{ROOT}/discovery.{{fmt}}", response_model=Open311Discovery,
            summary="Open311 service discovery: the GeoReport v2 endpoint and its formats",
            responses=_answers(200, "discovery", _DISCOVERY_EXAMPLE))
async def service_discovery(request: Request, fmt: Fmt,
                            jurisdiction_id: JurisdictionId = None) -> Response:
    return await _discovery(request, fmt, jurisdiction_id)


@router.get(f"{PREFIX}/discovery.{{fmt}}", response_model=Open311Discovery,
            summary="Open311 service discovery, where clients given the v2 URL look for it",
            responses=_answers(200, "discovery", _DISCOVERY_EXAMPLE))
async def service_discovery_v2(request: Request, fmt: Fmt,
                               jurisdiction_id: JurisdictionId = None) -> Response:
    return await _discovery(request, fmt, jurisdiction_id)


@router.get(f"{PREFIX}/services.{{fmt}}", response_model=list[Open311Service],
            summary="Open311 services: one per dispute category",
            responses=_answers(200, "services", [_EXAMPLE_SERVICE.model_dump()]))
async def list_services(request: Request, fmt: Fmt,
                        jurisdiction_id: JurisdictionId = None) -> Response:
    answer_in = format_of(fmt)
    _check_jurisdiction(request, jurisdiction_id)
    return render(answer_in, "services", [service.listing() for service in SERVICES.values()])


@router.get(f"{PREFIX}/services/{{service_code}}.{{fmt}}",
            response_model=Open311ServiceDefinition,
            summary="An Open311 service definition (no attributes)",
            responses=_answers(200, "service_definition",
                               {"service_code": "neighbor", "attributes": []}))
async def service_definition(request: Request, service_code: str, fmt: Fmt,
                             jurisdiction_id: JurisdictionId = None) -> Response:
    answer_in = format_of(fmt)
    _check_jurisdiction(request, jurisdiction_id)
    if service_code not in SERVICES:
        raise Open311Failure(404, f"no service '{service_code}'; see services.{fmt}")
    return render(answer_in, "service_definition",
                  Open311ServiceDefinition(service_code=service_code))


@router.post(f"{PREFIX}/requests.{{fmt}}", status_code=201, response_model=list[Open311Created],
             summary="File an Open311 service request (form-encoded, api_key required)",
             openapi_extra=_form_schema(),
             responses=_answers(201, "service_requests", [Open311Created(
                 service_request_id=_EXAMPLE_REQUEST.service_request_id, token="Xq3…",
                 service_notice="已受理 Received").model_dump()], 400, 403, 429))
async def create_request(request: Request, fmt: Fmt) -> Response:
    answer_in = format_of(fmt)
    fields = await _form(request)
    principal = await _principal(request, fields.pop("api_key", None) or None)
    if principal is None:
        raise Open311Failure(403, "a valid api_key is required")
    if not principal.allows(Scope.INTAKE_WRITE) or (
            principal.channels and Channel.OPEN311.value not in principal.channels):
        raise Open311Failure(403, "this api_key may not file Open311 requests")
    if wait := retry_after(request, principal):
        raise Open311Failure(429, f"this api_key sends requests too fast; retry in {wait} s",
                             headers={"Retry-After": str(wait)})
    try:
        filed = Open311Request.model_validate(fields)
    except ValidationError as exc:
        problems = field_errors(list(exc.errors()), strip=())
        raise Open311Failure(400, *(e.reason if e.field == "<body>" else f"{e.field}: {e.reason}"
                                    for e in problems)) from None
    _check_jurisdiction(request, filed.jurisdiction_id)
    if filed.service_code not in SERVICES:
        raise Open311Failure(400, f"service_code '{filed.service_code}' is not a service; "
                             f"see services.{fmt}")
    runtime = _runtime(request)
    async with runtime.sessions() as session, session.begin():
        created = await file_request(session, filed, runtime.settings.hash_secret)
    runtime.relay.wake()
    return render(answer_in, "service_requests", [created], 201)


@router.get(f"{PREFIX}/requests.{{fmt}}", response_model=list[Open311ServiceRequest],
            summary="Open311 requests: filters service_request_id, service_code, start_date, "
            "end_date, status; at most 1,000, the last 90 days by default",
            responses=_answers(200, "service_requests", [_EXAMPLE_REQUEST.model_dump()],
                               400, 403))
async def list_requests(request: Request, fmt: Fmt,
                        jurisdiction_id: JurisdictionId = None) -> Response:
    answer_in = format_of(fmt)
    _check_jurisdiction(request, jurisdiction_id)
    await _require_reader(request)
    try:
        query = parse_query(request.query_params, datetime.now(UTC))
    except QueryError as exc:
        raise Open311Failure(400, *map(str, exc.args)) from None
    return render(answer_in, "service_requests", await _matching(request, query))


@router.get(f"{PREFIX}/requests/{{service_request_id}}.{{fmt}}",
            response_model=list[Open311ServiceRequest],
            summary="One Open311 request (a list of one, as the spec has it)",
            responses=_answers(200, "service_requests", [_EXAMPLE_REQUEST.model_dump()], 403))
async def get_request(request: Request, service_request_id: str, fmt: Fmt,
                      jurisdiction_id: JurisdictionId = None) -> Response:
    answer_in = format_of(fmt)
    _check_jurisdiction(request, jurisdiction_id)
    await _require_reader(request)
    found = []
    if is_plausible_id(service_request_id):
        found = await _matching(request, RequestQuery(ids=(service_request_id,)))
    if not found:
        raise Open311Failure(404, f"no request '{service_request_id}'")
    return render(answer_in, "service_requests", found)


@router.get(f"{PREFIX}/tokens/{{token}}.{{fmt}}", response_model=list[Open311Token],
            summary="The service_request_id behind a token",
            responses=_answers(200, "service_requests", [Open311Token(
                service_request_id=_EXAMPLE_REQUEST.service_request_id,
                token="Xq3…").model_dump()], 403))
async def get_token(request: Request, token: str, fmt: Fmt,
                    jurisdiction_id: JurisdictionId = None) -> Response:
    answer_in = format_of(fmt)
    _check_jurisdiction(request, jurisdiction_id)
    await _require_reader(request)
    found = None
    if is_plausible_id(token):
        async with _runtime(request).sessions() as session:
            found = await find_token(session, token)
    if found is None:
        raise Open311Failure(404, f"no token '{token}'")
    return render(answer_in, "service_requests", [found])


@router.api_route(f"{ROOT}/{{anything:path}}", methods=["GET", "POST"],
                  include_in_schema=False)
async def unknown(anything: str) -> Response:
    """Registered last: whatever else is asked under /open311/ is the spec's 404."""
    raise Open311Failure(404, f"no such Open311 resource '{anything}'; the resources are "
                         "discovery, and under v2/: discovery, services, services/{code}, "
                         "requests, requests/{id} and tokens/{token}, each .xml or .json")


async def _matching(request: Request, query: RequestQuery) -> list[Open311ServiceRequest]:
    runtime = _runtime(request)
    async with runtime.sessions() as session:
        return await find_requests(session, query)
