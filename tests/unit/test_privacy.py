from __future__ import annotations

import logging

from kit.logs import JsonFormatter
from kit.privacy import keyed_hash, mask_id_number, mask_phone, scrub


def test_phone_is_masked_to_first_three_and_last_four() -> None:
    assert mask_phone("13800138000") == "138****8000"


def test_id_number_keeps_region_and_last_four() -> None:
    assert mask_id_number("110105199001010018") == "110105********0018"


def test_keyed_hash_is_stable_per_secret_and_differs_across_secrets() -> None:
    assert keyed_hash("s1", "phone", "13800138000") == keyed_hash("s1", "phone", "13800138000")
    assert keyed_hash("s1", "phone", "13800138000") != keyed_hash("s2", "phone", "13800138000")
    assert "13800138000" not in keyed_hash("s1", "phone", "13800138000")


def test_scrub_masks_numbers_in_free_text() -> None:
    text = "来电13800138000，身份证11010519900101001X，座机010-12345678"
    out = scrub(text)
    assert "13800138000" not in out and "138****8000" in out
    assert "11010519900101001X" not in out and "110105********001X" in out
    assert "12345678" not in out


def test_log_lines_never_carry_a_phone_number() -> None:
    record = logging.makeLogRecord({"msg": "caller %s", "args": ("13912345678",),
                                    "levelname": "INFO", "name": "t"})
    record.__dict__["phone"] = "13912345678"
    line = JsonFormatter("test").format(record)
    assert "13912345678" not in line
    assert "139****5678" in line


def test_a_repeated_log_message_is_let_through_once_per_window() -> None:
    from kit.logs import RepeatFilter

    repeat = RepeatFilter(window=60)

    def record(msg: str) -> logging.LogRecord:
        return logging.makeLogRecord({"name": "aiokafka", "msg": msg, "levelname": "ERROR"})

    passed = [repeat.filter(record("Unable connect to node")) for _ in range(50)]
    assert passed.count(True) == 1
    assert repeat.filter(record("another message"))


def test_a_number_escaped_in_json_is_still_masked_in_a_log_line() -> None:
    """A tab between groups is written \\t in the JSON line: the line's own scrub would miss
    the number, so the values are scrubbed before they are encoded."""
    record = logging.makeLogRecord({"msg": "note", "levelname": "INFO", "name": "t"})
    record.__dict__["note"] = "电话139\t1234\t5678"
    record.__dict__["detail"] = {"phone": "+86 139-1234-5678"}
    line = JsonFormatter("test").format(record)
    assert "1234" not in line and line.count("139****5678") == 2


async def test_an_error_answer_never_repeats_a_number_it_was_sent() -> None:
    import httpx
    from fastapi import FastAPI

    from kit.errors import ApiError, install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/v1/things/{thing_id}")
    async def thing(thing_id: str, count: int = 0) -> None:
        raise ApiError(404, "not_found", f"no thing {thing_id}")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as client:
        missing = await client.get("/v1/things/139-1234-5678")
        invalid = await client.get("/v1/things/x", params={"count": "13912345678x"})
    assert missing.status_code == 404 and "1234-5678" not in missing.text
    assert "139****5678" in missing.json()["message"]
    assert invalid.status_code == 422 and "13912345678" not in invalid.text


def test_the_audit_log_keeps_search_terms_masked() -> None:
    from contracts.api_mediation import AuditAction
    from kit.auth import Principal
    from services.mediation.store import audit

    principal = Principal(key_id="k", name="staff", scopes=frozenset())
    row = audit(principal, AuditAction.LIST, query={"text": "139 1234 5678",
                                                   "external_id": "13912345678"})
    assert row.detail == {"query": {"text": "139****5678", "external_id": "139****5678"}}


def test_scrub_skips_texts_of_fewer_than_ten_digits_and_still_masks_the_shortest_landline(
        ) -> None:
    # The shortest number scrub masks, a landline of 3 + 7 digits, in ASCII and full width.
    assert scrub("电话010-1234567转") == "电话010-****4567转"
    assert scrub("号码 0101234567 ") == "号码 010-****4567 "
    assert scrub("０１０-１２３４５６７") == "010-****4567"
    # Nine digits or fewer: returned as they are, without the patterns being run.
    for text in ("编号123456789", "139 1234 567", "楼上漏水，多次沟通无果。", "", "０１２３"):
        assert scrub(text) is text
