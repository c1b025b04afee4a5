"""422 reasons a client can act on (issue 23): what was expected in the docs' words, in
English and Chinese; never a regular expression or a validator's jargon."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from contracts.channels import GridReport, HotlineWorkOrder
from kit.errors import field_errors

GOOD = {"order_no": "GD-1", "content": "噪音扰民", "received_at": "2026-12-07T09:30:00+08:00"}


def reasons(model: Any, payload: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(payload)
    return {e.field: (e.reason, e.reason_zh) for e in field_errors(list(caught.value.errors()))}


@pytest.mark.parametrize("change,field,words,zh", [
    ({"region_code": "3306-99"}, "region_code", "6, 9 or 12 digits", "行政区划代码"),
    ({"order_no": "GD 1"}, "order_no", "without spaces", "不含空格"),
    ({"callback_url": "/callback"}, "callback_url", "absolute http or https URL", "完整的"),
    ({"received_at": "2026-12-07T09:30:00"}, "received_at", "+08:00", "偏移"),
    ({"received_at": "yesterday"}, "received_at", "ISO 8601", "ISO 8601"),
    ({"content": ""}, "content", "must not be empty", "不能为空"),
    ({"urgency": "very"}, "urgency", "must be one of", "以下之一"),
])
def test_each_reason_says_what_was_expected_in_words(
        change: dict[str, Any], field: str, words: str, zh: str) -> None:
    found = reasons(HotlineWorkOrder, {**GOOD, **change})
    reason, reason_zh = found[field]
    assert words in reason and reason_zh is not None and zh in reason_zh
    for jargon in ("\\d", "^", "pattern", "relative URL", "timezone info", "Input should"):
        assert jargon not in reason, (field, reason)


def test_a_missing_field_is_named_and_asked_for() -> None:
    found = reasons(GridReport, {"report_id": "R1", "grid_code": "330699001001001"})
    assert found["description"] == ("is required: add it", "必填项：请提供该字段")


def test_a_validators_own_words_are_kept() -> None:
    late = {**GOOD, "deadline": "2026-12-06T09:30:00+08:00"}
    reason, reason_zh = reasons(HotlineWorkOrder, late)["deadline"]
    assert reason == "the deadline is before received_at" and reason_zh
