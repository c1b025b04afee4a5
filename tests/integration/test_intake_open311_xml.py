"""Open311 GeoReport v2 in full, over real HTTP on the real broker and database: every
resource in XML (the spec's required format) with the spec's element names and the same
content as in JSON, service discovery, jurisdiction_id, errors in both formats, and a real
Open311 client library (georeport, unchanged) reading in both formats.

XML is read here with the standard library's ElementTree, which never fetches external
entities; what it parses is this server's own answer."""

from __future__ import annotations

import asyncio
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
import requests
from fastapi import FastAPI
from georeport import GeoReport

from tests.infra import DEV_KEY, Broker
from tests.integration.test_intake import intake, intake_app, reported_events
from tests.integration.test_intake_open311 import REQUEST_FIELDS, SERVICE_FIELDS, form

pytestmark = pytest.mark.integration
__all__ = ["intake", "intake_app"]

V2 = "/open311/v2"
COUNTY, VILLAGE = "330699", "330699001001"  # 枫溪县 and its 江滨社区 (the router's tree)
UNKNOWN_JURISDICTION = "110101"
DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>'


def xml_document(response: httpx.Response, root: str, status: int = 200) -> ElementTree.Element:
    """The spec's XML answer: text/xml in UTF-8, the declaration first, `root` as root."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    assert response.content.startswith(DECLARATION)
    document = ElementTree.fromstring(response.content)
    assert document.tag == root
    return document


def fields(element: ElementTree.Element) -> dict[str, str | None]:
    """An item's child elements as {name: text}; an empty element is None."""
    return {child.tag: child.text for child in element}


def xml_errors(response: httpx.Response, status: int) -> list[str]:
    """<errors><error><code/><description/></error>...</errors>: the descriptions."""
    document = xml_document(response, "errors", status)
    errors = [fields(error) for error in document]
    assert errors and all(set(e) == {"code", "description"} and e["code"] == str(status)
                          for e in errors)
    return [str(e["description"]) for e in errors]


def json_errors(response: httpx.Response, status: int) -> list[str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return [e["description"] for e in response.json() if e["code"] == status]


def as_xml_text(value: Any) -> str | None:
    """How a JSON value reads in the XML: booleans as true/false; null, "" and [] as an
    empty element."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def same_content(xml_items: list[dict[str, str | None]], json_items: list[dict[str, Any]]
                 ) -> bool:
    return xml_items == [{k: as_xml_text(v) for k, v in item.items()} for item in json_items]


async def file_in_xml(client: httpx.AsyncClient, **changes: str) -> dict[str, str | None]:
    """POST requests.xml as the spec has it (form-encoded), read the answer as XML."""
    created = await client.post(f"{V2}/requests.xml", data=form(**changes))
    requests_ = list(xml_document(created, "service_requests", 201))
    assert [r.tag for r in requests_] == ["request"]
    return fields(requests_[0])


async def test_every_resource_in_xml_has_the_spec_names_and_the_json_content(
        intake: str) -> None:
    async with httpx.AsyncClient(base_url=intake) as client:
        created = await file_in_xml(client)
        request_id, token = str(created["service_request_id"]), str(created["token"])
        pairs = {}
        for path in ("services", "services/labor", f"requests/{request_id}", f"tokens/{token}"):
            pairs[path] = (await client.get(f"{V2}/{path}.xml"),
                           await client.get(f"{V2}/{path}.json"))
        by_id = {"service_request_id": request_id}
        pairs["requests?id"] = (await client.get(f"{V2}/requests.xml", params=by_id),
                                await client.get(f"{V2}/requests.json", params=by_id))

    assert set(created) == {"service_request_id", "token", "service_notice", "account_id"}
    assert created["account_id"] == "account-7" and request_id.startswith("FQ")

    services_xml, services_json = pairs["services"]
    services = [fields(s) for s in xml_document(services_xml, "services")]
    assert len(services) == 15 and all(set(s) == SERVICE_FIELDS for s in services)
    assert all(element.tag == "service" for element in xml_document(services_xml, "services"))
    assert same_content(services, services_json.json())
    assert {s["service_code"]: s["metadata"] for s in services}["labor"] == "false"

    definition = xml_document(pairs["services/labor"][0], "service_definition")
    assert fields(definition) == {"service_code": "labor", "attributes": None}

    for key in (f"requests/{request_id}", "requests?id"):
        answer_xml, answer_json = pairs[key]
        shown = [fields(r) for r in xml_document(answer_xml, "service_requests")]
        assert len(shown) == 1 and set(shown[0]) == REQUEST_FIELDS
        assert same_content(shown, answer_json.json())
        assert (shown[0]["service_request_id"], shown[0]["status"], shown[0]["lat"]) == (
            request_id, "open", "29.7102")
        assert shown[0]["description"] == "楼上深夜噪音扰民，请回电139****5678。"
        assert b"13912345678" not in answer_xml.content

    token_xml, token_json = pairs[f"tokens/{token}"]
    tokens = [fields(r) for r in xml_document(token_xml, "service_requests")]
    assert tokens == [{"service_request_id": request_id, "token": token}]
    assert same_content(tokens, token_json.json())


async def test_discovery_names_the_endpoint_its_formats_and_whom_to_ask(
        intake_app: tuple[FastAPI, str]) -> None:
    app, url = intake_app
    async with httpx.AsyncClient(base_url=url) as client:
        as_xml = await client.get("/open311/discovery.xml")
        as_json = await client.get("/open311/discovery.json")
        under_v2 = await client.get(f"{V2}/discovery.json", params={"jurisdiction_id": COUNTY})
        discovered = as_json.json()["endpoints"][0]["url"]
        followed = await client.get(f"{discovered}/services.xml")
        unknown = await client.get("/open311/discovery.json",
                                   params={"jurisdiction_id": UNKNOWN_JURISDICTION})

    document = xml_document(as_xml, "discovery")
    assert [child.tag for child in document] == ["changeset", "contact", "key_service",
                                                 "endpoints"]
    endpoints = document.find("endpoints")
    assert endpoints is not None and [e.tag for e in endpoints] == ["endpoint"]
    endpoint = endpoints[0]
    assert [child.tag for child in endpoint] == ["specification", "url", "changeset", "type",
                                                 "formats"]
    assert [f.text for f in endpoint.iter("format")] == ["text/xml", "application/json"]
    assert endpoint.findtext("specification") == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint.findtext("url") == f"{url}{V2}" == discovered
    settings = app.state.runtime.settings
    assert endpoint.findtext("type") == ("production" if settings.environment == "production"
                                         else "test")
    assert document.findtext("contact") == settings.open311_contact
    assert document.findtext("key_service") == settings.open311_key_service

    body = as_json.json()
    assert set(body) == {"changeset", "contact", "key_service", "endpoints"}
    assert body["endpoints"][0]["formats"] == ["text/xml", "application/json"]
    assert body["changeset"] == document.findtext("changeset")
    assert under_v2.json() == body
    assert len(list(xml_document(followed, "services"))) == 15
    assert "jurisdiction_id" in json_errors(unknown, 404)[0]


async def test_jurisdiction_id_is_accepted_everywhere_checked_and_carried_to_the_router(
        intake: str, broker: Broker) -> None:
    async with httpx.AsyncClient(base_url=intake) as client:
        created = await file_in_xml(client, jurisdiction_id=VILLAGE)
        request_id, token = created["service_request_id"], created["token"]
        good, bad = {"jurisdiction_id": COUNTY}, {"jurisdiction_id": UNKNOWN_JURISDICTION}
        paths = ["services", "services/labor", "requests", f"requests/{request_id}",
                 f"tokens/{token}"]
        accepted = [await client.get(f"{V2}/{p}.{fmt}", params=good)
                    for p in paths for fmt in ("xml", "json")]
        refused_xml = [await client.get(f"{V2}/{p}.xml", params=bad) for p in paths]
        refused_json = [await client.get(f"{V2}/{p}.json", params=bad) for p in paths]
        refused_post = await client.post(f"{V2}/requests.xml",
                                         data=form(jurisdiction_id=UNKNOWN_JURISDICTION))
        blank = await client.get(f"{V2}/services.json", params={"jurisdiction_id": ""})

    assert [r.status_code for r in accepted] == [200] * len(accepted)
    for response in refused_xml:
        assert f"jurisdiction_id '{UNKNOWN_JURISDICTION}' not found" in xml_errors(response,
                                                                                  404)[0]
    for response in refused_json:
        assert "jurisdiction_id" in json_errors(response, 404)[0]
    assert "jurisdiction_id" in xml_errors(refused_post, 404)[0]
    assert blank.status_code == 200  # an empty argument counts as absent
    # The village's code reaches the router as the case's region code.
    assert request_id is not None
    event = (await reported_events(broker.bootstrap, [request_id]))[request_id][0]["data"]
    assert event["region_code"] == VILLAGE


async def test_errors_are_the_spec_list_in_the_format_asked_for(
        intake_app: tuple[FastAPI, str], unique: str) -> None:
    app, url = intake_app
    _, reader = await app.state.keys.create(f"xml-reader-{unique}", ["cases:read"])
    async with httpx.AsyncClient(base_url=url) as client:
        invalid_xml = await client.post(f"{V2}/requests.xml",
                                        data=form(lat="north", description="", email="x@"))
        invalid_json = await client.post(f"{V2}/requests.json",
                                         data=form(lat="north", description="", email="x@"))
        no_key = await client.post(f"{V2}/requests.xml", data=form(api_key=""))
        read_only = await client.post(f"{V2}/requests.xml", data=form(api_key=reader))
        unknown_service = await client.post(f"{V2}/requests.xml",
                                            data=form(service_code="potholes"))
        as_json_body = await client.post(f"{V2}/requests.xml", json=form())
        missing = await client.get(f"{V2}/requests/FQ20260101-0000000000000000.xml")
        unknown_definition = await client.get(f"{V2}/services/potholes.xml")
        bad_query = await client.get(f"{V2}/requests.xml", params={"status": "pending",
                                                                    "end_date": "2026-11-01"})
        nul_id = await client.get(f"{V2}/requests/a%00b.xml")
        unknown_resource_xml = await client.get(f"{V2}/comments.xml")
        unknown_resource_json = await client.get(f"{V2}/comments.json")
        unknown_format = await client.get(f"{V2}/requests.csv")
        no_format = await client.get(f"{V2}/services")
        other_version = await client.get("/open311/v1/services.json")

    problems = xml_errors(invalid_xml, 400)
    assert {p.split(":")[0] for p in problems} == {"lat", "description", "email"}
    assert problems == json_errors(invalid_json, 400)
    assert xml_errors(no_key, 403) and xml_errors(read_only, 403)
    assert "potholes" in xml_errors(unknown_service, 400)[0]
    assert "form-urlencoded" in xml_errors(as_json_body, 400)[0]
    assert "FQ20260101-0000000000000000" in xml_errors(missing, 404)[0]
    assert "see services.xml" in xml_errors(unknown_definition, 404)[0]
    assert len(xml_errors(bad_query, 400)) == 2
    # A NUL quoted back cannot be written in XML at all: it is replaced, the document parses.
    assert "a\ufffdb" in xml_errors(nul_id, 404)[0]
    assert "comments.xml" in xml_errors(unknown_resource_xml, 404)[0]
    assert "comments.json" in json_errors(unknown_resource_json, 404)[0]
    assert "'.csv'" in xml_errors(unknown_format, 404)[0]
    assert xml_errors(no_format, 404)
    assert "v1/services.json" in json_errors(other_version, 404)[0]


async def test_a_real_open311_client_reads_what_it_posted_in_xml_and_json(
        intake: str, unique: str) -> None:
    """georeport (PyPI, unchanged) reads; it cannot post (it says so), so the filing is the
    spec's form-encoded POST to requests.xml, read back as XML."""
    async with httpx.AsyncClient(base_url=intake) as client:
        created = await file_in_xml(client, description=f"邻居占道堆物{unique}",
                                    service_code="neighbor")
    request_id = str(created["service_request_id"])
    read: dict[str, dict[str, Any]] = {}
    for fmt in ("xml", "json"):
        client_ = GeoReport(f"{intake}{V2}", jurisdiction=COUNTY, api_key=DEV_KEY,
                            output_format=fmt)
        # georeport is synchronous (requests): off the event loop the server runs on.
        read[fmt] = {
            "services": await asyncio.to_thread(client_.get_service_list),
            "definition": await asyncio.to_thread(client_.get_service_definition, "neighbor"),
            "one": await asyncio.to_thread(client_.get_service_request, request_id),
            "by_id": await asyncio.to_thread(client_.get_service_requests,
                                             service_request_id=request_id),
            "filtered": await asyncio.to_thread(client_.get_service_requests,
                                                service_code="neighbor", status="open"),
        }
    elsewhere = GeoReport(f"{intake}{V2}", jurisdiction=UNKNOWN_JURISDICTION,
                          output_format="xml")
    with pytest.raises(requests.HTTPError) as refused:
        await asyncio.to_thread(elsewhere.get_service_list)

    xml, json_ = read["xml"], read["json"]
    assert [s["service_code"] for s in xml["services"]] == [
        s["service_code"] for s in json_["services"]]
    assert len(xml["services"]) == 15 and "neighbor" in {s["service_code"]
                                                          for s in xml["services"]}
    assert xml["definition"]["service_code"] == json_["definition"]["service_code"] == "neighbor"
    # xmltodict reads a one-element list as the element itself.
    assert xml["one"]["service_request_id"] == json_["one"]["service_request_id"] == request_id
    assert xml["by_id"]["service_request_id"] == json_["by_id"][0]["service_request_id"]
    assert xml["one"]["description"] == json_["one"]["description"] == f"邻居占道堆物{unique}"
    assert (xml["one"]["status"], xml["one"]["lat"], xml["one"]["long"]) == (
        "open", "29.7102", "120.2411")
    filtered_xml = xml["filtered"] if isinstance(xml["filtered"], list) else [xml["filtered"]]
    assert request_id in {r["service_request_id"] for r in filtered_xml}
    assert request_id in {r["service_request_id"] for r in json_["filtered"]}
    assert refused.value.response is not None and refused.value.response.status_code == 404
