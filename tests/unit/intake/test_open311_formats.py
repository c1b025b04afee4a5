"""Open311's XML and JSON answers, its discovery document and its jurisdictions: pure
functions, no server (tests/integration/test_intake_open311_xml.py has them over HTTP)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

import pytest

from contracts.api_intake import Open311Token
from contracts.channels import Open311Request
from services.intake.domain import Receipt
from services.intake.open311 import jurisdictions
from services.intake.open311.discovery import discovery
from services.intake.open311.domain import SERVICES, open311_to_case
from services.intake.open311.formats import (
    Format,
    Open311Failure,
    format_of,
    format_of_path,
    render,
    render_failure,
    to_xml,
)


def test_a_list_is_a_root_holding_one_element_per_item_named_as_the_spec_names_them() -> None:
    document = ElementTree.fromstring(to_xml("services", [
        SERVICES["labor"].listing().model_dump(), SERVICES["other"].listing().model_dump()]))
    assert [e.tag for e in document] == ["service", "service"]
    labor, other = document
    assert [child.tag for child in labor] == ["service_code", "service_name", "description",
                                              "metadata", "type", "keywords", "group"]
    assert (labor.findtext("metadata"), other.findtext("keywords")) == ("false", "")


def test_nested_lists_take_their_items_names_and_null_is_an_empty_element() -> None:
    made = discovery("http://x/open311/v2", production=False, contact="c", key_service="k")
    document = ElementTree.fromstring(to_xml("discovery", made.model_dump()))
    endpoint = document.find("endpoints/endpoint")
    assert endpoint is not None and endpoint.findtext("type") == "test"
    assert [f.text for f in endpoint.iter("format")] == ["text/xml", "application/json"]
    empty = ElementTree.fromstring(to_xml("service_requests", [{"account_id": None}]))
    assert empty.find("request/account_id") is not None
    assert empty.findtext("request/account_id") == ""


def test_xml_escapes_markup_and_replaces_what_xml_cannot_carry() -> None:
    written = to_xml("errors", [{"code": 404, "description": "a\x00b\x1f <c> & \U0001f600"}])
    assert written.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    parsed = ElementTree.fromstring(written)
    assert parsed.findtext("error/description") == "a\ufffdb\ufffd <c> & \U0001f600"


def test_both_formats_carry_the_same_content_with_the_spec_content_types() -> None:
    token = [Open311Token(service_request_id="FQ1", token="t")]
    as_json = render(Format.JSON, "service_requests", token)
    as_xml = render(Format.XML, "service_requests", token, 201)
    assert as_json.headers["content-type"] == "application/json; charset=utf-8"
    assert json.loads(as_json.body) == [{"service_request_id": "FQ1", "token": "t"}]
    assert (as_xml.status_code, as_xml.headers["content-type"]) == (201,
                                                                     "text/xml; charset=utf-8")
    request = ElementTree.fromstring(bytes(as_xml.body)).find("request")
    assert request is not None
    assert {c.tag: c.text for c in request} == {"service_request_id": "FQ1", "token": "t"}


def test_errors_are_the_spec_list_with_the_status_as_code_and_masked_numbers() -> None:
    answer = render_failure(Format.XML, Open311Failure(403, "key of 13912345678 refused",
                                                        headers={"X-Why": "test"}))
    error = ElementTree.fromstring(bytes(answer.body)).find("error")
    assert answer.status_code == 403 and answer.headers["x-why"] == "test"
    assert error is not None and error.findtext("code") == "403"
    assert error.findtext("description") == "key of 139****5678 refused"


@pytest.mark.parametrize("fmt", ["csv", "XML", "", "json.bak"])
def test_only_xml_and_json_are_formats(fmt: str) -> None:
    with pytest.raises(Open311Failure) as refused:
        format_of(fmt)
    assert refused.value.status == 404
    assert (format_of("xml"), format_of("json")) == (Format.XML, Format.JSON)


def test_an_error_is_in_the_paths_format_and_xml_otherwise() -> None:
    assert format_of_path("/open311/v2/requests.json") is Format.JSON
    assert format_of_path("/open311/v2/requests.xml") is Format.XML
    assert format_of_path("/open311/v2/requests") is Format.XML


def test_jurisdictions_are_the_county_its_towns_and_villages(tmp_path: Path) -> None:
    sample = jurisdictions.load()
    assert sample.county == "330699"
    assert {"330699", "330699001", "330699001001"} <= sample.codes
    assert "330699001001001" not in sample  # a grid is not a jurisdiction
    assert "110101" not in sample
    tree = tmp_path / "tree.yaml"
    tree.write_text('county: {code: "110101", name: 东城区}\n'
                    'towns: [{code: "110101001", name: 东华门街道}]\n', encoding="utf-8")
    assert jurisdictions.load(tree).codes == {"110101", "110101001"}


def test_a_jurisdiction_becomes_the_cases_region_code() -> None:
    receipt = Receipt(case_id="FQ1", external_id="FQ1", received_at=datetime.now(UTC),
                      hash_secret="s")
    request = Open311Request.model_validate({
        "service_code": "neighbor", "description": "噪音", "address_string": "江滨",
        "jurisdiction_id": "330699001001"})
    assert open311_to_case(request, receipt).region_code == "330699001001"
    without = request.model_copy(update={"jurisdiction_id": None})
    assert open311_to_case(without, receipt).region_code is None
