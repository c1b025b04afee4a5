"""Open311 in fengqiao's words: services, requests as cases, status and query windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.channels import Open311Request
from contracts.enums import Category, PartyRole, Status
from services.intake.domain import Receipt
from services.intake.open311.domain import (
    SERVICES,
    STATUS_NOTES,
    QueryError,
    full_name,
    is_plausible_id,
    open311_status,
    open311_to_case,
    parse_query,
    search_window,
)

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_there_is_one_service_per_category_named_in_chinese_and_english() -> None:
    assert set(SERVICES) == {c.value for c in Category}
    neighbor = SERVICES["neighbor"].listing()
    assert neighbor.service_name == "邻里纠纷 Neighbour disputes"
    assert neighbor.metadata is False and neighbor.type == "realtime"
    assert "噪音扰民" in neighbor.keywords.split(",")
    assert all(s.listing().description for s in SERVICES.values())


def test_a_request_becomes_a_case_with_its_category_name_and_masked_phone() -> None:
    request = Open311Request.model_validate({
        "service_code": "property_management", "description": "电梯坏了一个月，电话13912345678",
        "lat": "30.1", "long": "120.2", "first_name": "三", "last_name": "张",
        "phone": "13912345678", "email": "z@example.cn", "address_string": "文昌社区5幢"})
    receipt = Receipt(case_id="FQ1", external_id="FQ1", received_at=NOW, hash_secret="s")
    case = open311_to_case(request, receipt)
    assert (case.channel_category, case.external_id, case.received_at) == ("物业纠纷", "FQ1", NOW)
    assert case.location is not None and (case.location.lat, case.location.lon) == (30.1, 120.2)
    assert case.reporter is not None
    assert (case.reporter.name, case.reporter.role, case.reporter.phone_masked) == (
        "张三", PartyRole.REPORTER, "139****5678")
    assert "13912345678" not in case.model_dump_json()


@pytest.mark.parametrize("first,last,name", [("三", "张", "张三"), ("John", "Smith", "John Smith"),
                                             (None, "王", "王"), (None, None, None)])
def test_full_names_follow_the_language(first: str | None, last: str | None,
                                        name: str | None) -> None:
    assert full_name(first, last) == name


@pytest.mark.parametrize("status,open_or_closed", [
    (Status.ROUTED, "open"), (Status.RESOLVED, "open"), (Status.WITHDRAWN, "open"),
    (Status.CLOSED, "closed"), (Status.VISITED, "closed"), (Status.RATED, "closed"),
    (Status.ARCHIVED, "closed")])
def test_a_request_is_closed_once_its_case_is_closed(status: Status,
                                                     open_or_closed: str) -> None:
    assert open311_status(status) == open_or_closed


def test_every_status_has_a_bilingual_note() -> None:
    assert set(STATUS_NOTES) == set(Status)
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in note) and any(ch.isascii() and
               ch.isalpha() for ch in note) for note in STATUS_NOTES.values())


def test_the_default_window_is_the_last_90_days() -> None:
    assert search_window(None, None, NOW) == (NOW - timedelta(days=90), NOW)
    start = NOW - timedelta(days=200)
    assert search_window(start, None, NOW) == (start, start + timedelta(days=90))
    assert search_window(None, NOW, NOW) == (NOW - timedelta(days=90), NOW)


def test_a_window_may_not_span_more_than_90_days_or_run_backwards() -> None:
    with pytest.raises(QueryError, match="90 days"):
        search_window(NOW - timedelta(days=91), NOW, NOW)
    with pytest.raises(QueryError, match="before"):
        search_window(NOW, NOW - timedelta(days=1), NOW)


def test_ids_override_every_other_filter() -> None:
    query = parse_query({"service_request_id": "A, B,A", "status": "bogus"}, NOW)
    assert query.ids == ("A", "B") and query.statuses == () and query.start is None


def test_filters_are_parsed_and_every_problem_is_named() -> None:
    query = parse_query({"service_code": "neighbor,labor", "status": "open",
                         "start_date": "2026-11-01T00:00:00Z"}, NOW)
    assert query.service_codes == ("neighbor", "labor") and query.statuses == ("open",)
    assert query.start == datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(QueryError) as info:
        parse_query({"service_code": "potholes", "status": "pending",
                     "start_date": "2026-11-01", "end_date": "soon"}, NOW)
    problems = " | ".join(info.value.args)
    for word in ("potholes", "status", "start_date", "end_date"):
        assert word in problems


def test_dates_outside_1900_to_2099_are_refused_rather_than_overflowing() -> None:
    with pytest.raises(QueryError, match="start_date"):
        parse_query({"start_date": "9999-12-31T23:59:59Z"}, NOW)
    with pytest.raises(QueryError, match="end_date"):
        parse_query({"end_date": "0001-01-01T00:00:00Z"}, NOW)


@pytest.mark.parametrize("value,plausible", [("FQ20261120-0123456789ABCDEF", True),
                                             ("a\x00b", False), ("", False), ("x" * 65, False)])
def test_only_plausible_ids_are_looked_up(value: str, plausible: bool) -> None:
    assert is_plausible_id(value) is plausible
    if not plausible and value:
        with pytest.raises(QueryError):
            parse_query({"service_request_id": value}, NOW)
