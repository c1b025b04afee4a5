"""The one error format of every REST API:
{"error": code, "message": text, "fields": [{"field": name, "reason": text}]}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from kit.privacy import scrub_values

DATABASE_RETRY_AFTER_SECONDS = "2"
# SQLSTATE classes 08 (connection exception) and 57 (operator intervention: shutdown,
# restart, "cannot connect now").
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "57")


class FieldError(BaseModel):
    field: str
    reason: str


class ErrorBody(BaseModel):
    error: str
    message: str
    fields: list[FieldError] = []


class ApiError(Exception):
    """Raise anywhere in a request to answer with the error format."""

    def __init__(self, status: int, code: str, message: str,
                 fields: list[FieldError] | None = None, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []
        self.headers = headers
        self.extra = extra or {}


def field_errors(errors: list[Any], *, strip: tuple[str, ...] = ("body",)) -> list[FieldError]:
    """Turn pydantic errors into {field, reason}; `body.order_no` becomes `order_no`."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        while loc and loc[0] in strip:
            loc = loc[1:]
        reason = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            out.append(FieldError(field="<body>", reason="the body is not valid JSON: "
                                  + str(err.get("ctx", {}).get("error", reason))))
            continue
        if reason.startswith("Value error, "):
            reason = reason.removeprefix("Value error, ")
        out.append(FieldError(field=".".join(loc) or "<body>", reason=reason))
    return out


def _response(status: int, body: ErrorBody, headers: dict[str, str] | None = None,
              extra: dict[str, Any] | None = None) -> JSONResponse:
    content = body.model_dump()
    content.update(extra or {})
    # An error never repeats a phone, id or bank card number it was sent (a path parameter,
    # a field name, a validator's message): they are masked like everything that leaves.
    return JSONResponse(scrub_values(content), status_code=status, headers=headers)


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached right now (restarting, failing over,
    every pooled connection busy), rather than that the request or the code is wrong."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout | ConnectionError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    # The driver's own error, e.g. asyncpg's "the database system is shutting down" on connect.
    cause: BaseException | None = exc.orig
    while cause is not None:
        sqlstate = str(getattr(cause, "sqlstate", "") or "")
        if isinstance(cause, OSError) or sqlstate[:2] in UNAVAILABLE_SQLSTATE_CLASSES:
            return True
        cause = cause.__cause__
    return False


def install_error_handlers(app: FastAPI) -> None:
    async def _database_down(request: Request, exc: Exception) -> JSONResponse:
        if not database_unavailable(exc):
            raise exc  # a real error (a constraint, a bug): the 500 it is
        # A database restart lasts seconds: tell clients to retry rather than fail them.
        return _response(503, ErrorBody(error="database_unavailable",
                                        message="the database is unavailable; retry shortly"),
                         {"Retry-After": DATABASE_RETRY_AFTER_SECONDS})

    for exc_class in (DBAPIError, PoolTimeout, ConnectionError):
        app.add_exception_handler(exc_class, _database_down)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status == 401:
            headers.setdefault("WWW-Authenticate", "Bearer")
        return _response(exc.status, ErrorBody(error=exc.code, message=exc.message,
                                               fields=exc.fields), headers, exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = field_errors(list(exc.errors()))
        return _response(422, ErrorBody(
            error="validation_failed",
            message=f"{len(fields)} field(s) invalid: " + ", ".join(f.field for f in fields[:10]),
            fields=fields))

    @app.exception_handler(ValidationError)
    async def _model_validation(_: Request, exc: ValidationError) -> JSONResponse:
        fields = field_errors(list(exc.errors()))
        return _response(422, ErrorBody(error="validation_failed",
                                        message="invalid input", fields=fields))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            # FastAPI answers a body that is not UTF-8 with a bare 400; it is invalid input
            # like any other malformed body (found by fuzzing).
            return _response(422, ErrorBody(
                error="validation_failed", message="the body is not valid UTF-8 JSON",
                fields=[FieldError(field="<body>", reason="not valid UTF-8: "
                                   + str(exc.__cause__.reason))]))
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
                413: "payload_too_large"}.get(exc.status_code, "http_error")
        return _response(exc.status_code, ErrorBody(error=code, message=str(exc.detail)),
                         getattr(exc, "headers", None))


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting the error format for these statuses."""
    return {status: {"model": ErrorBody} for status in statuses}
