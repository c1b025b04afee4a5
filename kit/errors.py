"""The one error format of every REST API:
{"error": code, "message": text, "fields": [{"field": name, "reason": text}]}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from kit.privacy import scrub_values

DATABASE_RETRY_AFTER_SECONDS = "2"
# SQLSTATE classes 08 (connection exception), 57 (operator intervention: shutdown,
# restart, "cannot connect now") and 40 (transaction rollback: a deadlock or a
# serialization failure, which the same request sent again gets past).
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "57", "40")


class FieldError(BaseModel):
    field: str
    reason: str = Field(description="What was expected and what to do, in English")
    reason_zh: str | None = Field(default=None, description="The same in Chinese (中文说明)")


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


# The forms the contracts' patterns stand for, in the docs' words: a reason never shows a
# regular expression.
_PATTERN_WORDS: dict[str, tuple[str, str]] = {
    r"^\d{6}(\d{3}(\d{3})?)?$": ("an administrative division code of 6, 9 or 12 digits, "
                                 "e.g. 330699101 (GET /v1/jurisdictions lists them)",
                                 "6、9 或 12 位行政区划代码，例如 330699101"),
    r"^\d{15}$": ("a 15-digit code (a grid: the 12-digit village code plus 3 digits)",
                  "15 位编码（网格编码：12 位村（社区）代码加 3 位）"),
    r"^\d{12}$": ("a 12-digit village code", "12 位村（社区）代码"),
    r"^\d{9}$": ("a 9-digit town code", "9 位乡镇（街道）代码"),
    r"^\d{6}$": ("a 6-digit county code", "6 位县（区）代码"),
    r"^[0-9A-Za-z]{2,32}$": ("2 to 32 letters or digits", "2 至 32 位字母或数字"),
    r"^[\w\-./#()（）〔〕\[\]]+$": (
        "an id of letters, digits, Chinese characters and - . / # ( ) （ ） 〔 〕 [ ], "
        "without spaces", "由字母、数字、汉字及 - . / # ( ) （ ） 〔 〕 [ ] 组成的编号，不含空格"),
    r"^\d{1,15}$": ("a division code of 1 to 15 digits", "1 至 15 位区划代码"),
    r"^[0-9]{1,15}$": ("a division code of 1 to 15 digits", "1 至 15 位区划代码"),
    r"^\d+$": ("digits only", "只能是数字"),
    r"^[^\x00]*$": ("text without NUL characters", "不含 NUL 字符的文本"),
    r"^[^@\s]+@[^@\s]+\.[^@\s]+$": ("an e-mail address such as name@example.gov.cn",
                                     "电子邮件地址，例如 name@example.gov.cn"),
}
_MOMENT_EXAMPLE = "2026-12-07T09:30:00+08:00"


def _expected(err: dict[str, Any]) -> tuple[str, str] | None:
    """(English, Chinese) for pydantic's error types a client meets, in the docs' words and
    with what to send instead; None keeps pydantic's own message (custom validators already
    say what is wrong in words)."""
    kind, ctx = str(err.get("type", "")), err.get("ctx") or {}
    if kind == "missing":
        return "is required: add it", "必填项：请提供该字段"
    if kind == "string_pattern_mismatch":
        en, zh = _PATTERN_WORDS.get(str(ctx.get("pattern")), (
            "a value of the form the docs give for this field", "符合文档所述格式的值"))
        return f"must be {en}", f"应为{zh}"
    if kind == "string_too_short":
        n = ctx.get("min_length")
        return ((f"must not be empty: send at least {n} character(s)", "不能为空")
                if n == 1 else (f"must have at least {n} characters", f"至少 {n} 个字符"))
    if kind == "string_too_long":
        n = ctx.get("max_length")
        return f"must have at most {n} characters: shorten it", f"最多 {n} 个字符，请缩短"
    if kind == "too_short" and ctx.get("min_length") == 1:
        return "must not be empty", "不能为空"
    if kind in ("too_long", "too_short"):
        n = ctx.get("max_length" if kind == "too_long" else "min_length")
        word = "most" if kind == "too_long" else "least"
        return (f"must have at {word} {n} item(s)",
                f"{'最多' if kind == 'too_long' else '至少'} {n} 项")
    if kind.startswith("url_"):
        return ("must be an absolute http or https URL, e.g. "
                "https://hotline.example.gov.cn/fengqiao/callback",
                "应为完整的 http 或 https 地址，例如 https://hotline.example.gov.cn/fengqiao/callback")
    if kind == "timezone_aware":
        return (f"must carry a UTC offset, e.g. {_MOMENT_EXAMPLE} (Beijing time): add the offset",
                f"时间须带 UTC 偏移，例如 {_MOMENT_EXAMPLE}（北京时间）")
    if kind.startswith(("datetime_", "date_")):
        return (f"must be a date and time in ISO 8601 with an offset, e.g. {_MOMENT_EXAMPLE}",
                f"应为带偏移的 ISO 8601 时间，例如 {_MOMENT_EXAMPLE}")
    if kind in ("enum", "literal_error"):
        return (f"must be one of {ctx.get('expected')}",
                f"应为以下之一：{ctx.get('expected')}")
    if kind == "extra_forbidden":
        return ("is not a field of this request: remove it (the docs list the fields)",
                "不是该请求的字段，请删除（字段见文档）")
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "must be a whole number", "应为整数"
    if kind in ("float_parsing", "float_type", "decimal_parsing"):
        return "must be a number", "应为数字"
    if kind in ("bool_parsing", "bool_type"):
        return "must be true or false", "应为 true 或 false"
    if kind in ("string_type", "string_unicode"):
        return "must be text (a JSON string)", "应为文本（JSON 字符串）"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be an object ({...})", "应为对象（{...}）"
    if kind in ("list_type", "tuple_type", "set_type"):
        return "must be a list ([...])", "应为列表（[...]）"
    bounds = {"greater_than_equal": ("ge", "at least", "不小于"),
              "greater_than": ("gt", "more than", "大于"),
              "less_than_equal": ("le", "at most", "不大于"),
              "less_than": ("lt", "less than", "小于")}
    if kind in bounds:
        key, en, zh = bounds[kind]
        return f"must be {en} {ctx.get(key)}", f"应{zh} {ctx.get(key)}"
    return None


def field_errors(errors: list[Any], *, strip: tuple[str, ...] = ("body",)) -> list[FieldError]:
    """Turn pydantic errors into {field, reason, reason_zh}; `body.order_no` becomes
    `order_no`. Reasons say what was expected in the docs' words, never a pattern."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        while loc and loc[0] in strip:
            loc = loc[1:]
        reason = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            out.append(FieldError(field="<body>", reason="the body is not valid JSON: "
                                  + str(err.get("ctx", {}).get("error", reason)),
                                  reason_zh="请求体不是合法的 JSON"))
            continue
        expected = _expected(err)
        if expected is None:
            reason = reason.removeprefix("Value error, ").removeprefix("Assertion failed, ")
            expected = (reason, f"取值无效：{reason}")
        out.append(FieldError(field=".".join(loc) or "<body>", reason=expected[0],
                              reason_zh=expected[1]))
    return out


def _response(status: int, body: ErrorBody, headers: dict[str, str] | None = None,
              extra: dict[str, Any] | None = None) -> JSONResponse:
    content = body.model_dump()
    content.update(extra or {})
    # An error never repeats a phone, id or bank card number it was sent (a path parameter,
    # a field name, a validator's message): they are masked like everything that leaves.
    return JSONResponse(scrub_values(content), status_code=status, headers=headers)


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot serve this right now (restarting, failing over,
    every pooled connection busy, the transaction chosen as a deadlock's victim), rather than
    that the request or the code is wrong: the request may be sent again."""
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
                                        message="the database is unavailable or busy; "
                                        "retry shortly"),
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
