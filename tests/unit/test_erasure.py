"""Erasing personal data from stored payloads: personal fields emptied, free text keeps its
words without the names, numbers and links, the case's ids and facts untouched; twice is
the same as once."""

from __future__ import annotations

from kit.erasure import ERASED, erase_json, erase_text, personal_strings

WORK_ORDER = {
    "order_no": "12345202611230001", "category": "邻里纠纷", "urgency": "normal",
    "received_at": "2026-11-23T09:30:00+08:00", "caller_name": "欧阳娜娜",
    "caller_phone": "13912345678", "address": "杭州市西湖区文三路88号", "region_code": "330106",
    "content": "我叫欧阳娜娜，电话139 1234 5678，身份证330106199003071234，住在杭州市西湖区"
               "文三路88号，座机0571-87654321，照片 https://img.example.com/p/1.jpg 楼上漏水",
    "parties": [{"name": "司马相如", "role": "respondent", "phone": "13787654321",
                 "id_number": "330106198511020017"}],
}


def test_personal_fields_are_emptied_and_facts_kept() -> None:
    erased = erase_json(WORK_ORDER)
    for field in ("caller_name", "caller_phone", "address"):
        assert erased[field] is None
    assert erased["parties"] == [{"name": None, "role": "respondent", "phone": None,
                                  "id_number": None}]
    for fact in ("order_no", "category", "urgency", "received_at", "region_code"):
        assert erased[fact] == WORK_ORDER[fact]


def test_free_text_loses_names_numbers_and_links_but_keeps_its_words() -> None:
    text = erase_json(WORK_ORDER)["content"]
    for personal in ("欧阳娜娜", "139 1234 5678", "330106199003071234", "文三路88号",
                     "0571-87654321", "https://img.example.com"):
        assert personal not in text
    assert "楼上漏水" in text and text.count(ERASED) >= 6


def test_a_name_the_record_holds_elsewhere_is_erased_from_its_text() -> None:
    known = personal_strings(WORK_ORDER)
    assert {"欧阳娜娜", "司马相如", "13787654321"} <= known
    assert erase_text("司马相如拒绝调解，手机13787654321", known) == f"{ERASED}拒绝调解，手机{ERASED}"
    assert erase_text("对方手机138****8000") == f"对方手机{ERASED}"


def test_erasing_twice_is_erasing_once() -> None:
    once = erase_json(WORK_ORDER)
    assert erase_json(once) == once


def test_a_service_that_does_not_know_the_names_drops_staff_text_whole() -> None:
    body = {"data": {"reason": "与欧阳娜娜沟通", "to_status": "rated", "data": {
        "visit_notes": "回访满意", "satisfaction": 5, "agreement": None}}}
    assert erase_json(body, drop=frozenset({"reason", "visit_notes", "agreement"})) == {
        "data": {"reason": ERASED, "to_status": "rated", "data": {
            "visit_notes": ERASED, "satisfaction": 5, "agreement": None}}}
