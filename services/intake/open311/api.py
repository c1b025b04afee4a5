"""Open311 GeoReport v2 routes under /open311/v2/, JSON format only. Errors are the spec's
JSON list of {code, description}, not fengqiao's error format, so that existing Open311
clients understand them; arguments are therefore parsed here rather than by FastAPI."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from contracts.api_intake import (
    Open311Created,
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
from kit.privacy import scrub
from kit.ratelimit import retry_after
from kit.runtime import Runtime
from services.intake.open311.domain import (
    SERVICES,
    QueryError,
    RequestQuery,
    is_plausible_id,
    parse_query,
)
from services.intake.open311.handlers import file_request, find_requests, find_token

PREFIX = "/open311/v2"
FORM = "application/x-www-form-urlencoded"


class Open311Failure(Exception):
    """An answer in the spec's error format: HTTP `status`, one entry per description."""

    def __init__(self, status: int, *descriptions: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__("; ".join(descriptions))
        self.status = status
        self.descriptions = descriptions or ("error",)
        self.headers = headers


async def open311_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Open311Failure)
    # Scrubbed like every error answer: a description may quote what the client sent.
    return JSONResponse([Open311Error(code=exc.status, description=scrub(d)).model_dump()
                         for d in exc.descriptions], status_code=exc.status,
                        headers=exc.headers)


def _json(models: Sequence[BaseModel], status: int = 200) -> JSONResponse:
    return JSONResponse([m.model_dump(mode="json") for m in models], status_code=status)


def _json_only(fmt: str) -> None:
    if fmt == "json":
        return
    if fmt == "xml":
        raise Open311Failure(400, "this endpoint serves JSON only: use .json instead of .xml")
    raise Open311Failure(404, f"unknown format '.{fmt}': use .json")


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


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


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The spec's error list for these statuses; every route answers 400 for .xml and 404
    for any other format."""
    return {status: {"model": list[Open311Error], "description": "the spec's error list"}
            for status in sorted({400, 404, *statuses})}


router = APIRouter(prefix=PREFIX, tags=["open311"])


@router.get("/services.{fmt}", response_model=list[Open311Service],
            summary="Open311 services: one per dispute category", responses=_errors())
async def list_services(fmt: str) -> JSONResponse:
    _json_only(fmt)
    return _json([service.listing() for service in SERVICES.values()])


@router.get("/services/{service_code}.{fmt}", response_model=Open311ServiceDefinition,
            summary="An Open311 service definition (no attributes)",
            responses=_errors())
async def service_definition(service_code: str, fmt: str) -> JSONResponse:
    _json_only(fmt)
    if service_code not in SERVICES:
        raise Open311Failure(404, f"no service '{service_code}'; see services.json")
    return JSONResponse(Open311ServiceDefinition(service_code=service_code).model_dump())


@router.post("/requests.{fmt}", status_code=201, response_model=list[Open311Created],
             summary="File an Open311 service request (form-encoded, api_key required)",
             openapi_extra=_form_schema(),
             responses=_errors(403, 429))
async def create_request(request: Request, fmt: str) -> JSONResponse:
    _json_only(fmt)
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
    if filed.service_code not in SERVICES:
        raise Open311Failure(400, f"service_code '{filed.service_code}' is not a service; "
                             "see services.json")
    runtime = _runtime(request)
    async with runtime.sessions() as session, session.begin():
        created = await file_request(session, filed, runtime.settings.hash_secret)
    runtime.relay.wake()
    return _json([created], 201)


@router.get("/requests.{fmt}", response_model=list[Open311ServiceRequest],
            summary="Open311 requests: filters service_request_id, service_code, start_date, "
            "end_date, status; at most 1,000, the last 90 days by default",
            responses=_errors(403))
async def list_requests(request: Request, fmt: str) -> JSONResponse:
    _json_only(fmt)
    await _require_reader(request)
    try:
        query = parse_query(request.query_params, datetime.now(UTC))
    except QueryError as exc:
        raise Open311Failure(400, *map(str, exc.args)) from None
    return _json(await _matching(request, query))


@router.get("/requests/{service_request_id}.{fmt}", response_model=list[Open311ServiceRequest],
            summary="One Open311 request (a list of one, as the spec has it)",
            responses=_errors(403))
async def get_request(request: Request, service_request_id: str, fmt: str) -> JSONResponse:
    _json_only(fmt)
    await _require_reader(request)
    found = []
    if is_plausible_id(service_request_id):
        found = await _matching(request, RequestQuery(ids=(service_request_id,)))
    if not found:
        raise Open311Failure(404, f"no request '{service_request_id}'")
    return _json(found)


@router.get("/tokens/{token}.{fmt}", response_model=list[Open311Token],
            summary="The service_request_id behind a token",
            responses=_errors(403))
async def get_token(request: Request, token: str, fmt: str) -> JSONResponse:
    _json_only(fmt)
    await _require_reader(request)
    found = None
    if is_plausible_id(token):
        async with _runtime(request).sessions() as session:
            found = await find_token(session, token)
    if found is None:
        raise Open311Failure(404, f"no token '{token}'")
    return _json([found])


@router.api_route("/{anything:path}", methods=["GET", "POST"], include_in_schema=False)
async def unknown(anything: str) -> JSONResponse:
    raise Open311Failure(404, f"no such Open311 resource '{anything}'; the resources are "
                         "services.json, services/{code}.json, requests.json, "
                         "requests/{id}.json and tokens/{token}.json")


async def _matching(request: Request, query: RequestQuery) -> list[Open311ServiceRequest]:
    runtime = _runtime(request)
    async with runtime.sessions() as session:
        return await find_requests(session, query)
