"""Open311's two formats: every answer, errors included, in JSON or in the XML the spec
requires, chosen by the resource's extension (`services.xml`, `requests.json`). The XML
element names are the spec's: a list is a root element named for the resource holding one
element per item (`<services><service>`, `<service_requests><request>`,
`<errors><error>`), and a list inside an item is named for its items (`<formats><format>`,
`<attributes><attribute>`). XML is only written here, never parsed: Open311 clients send
form-encoded data."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

from fastapi import Response
from pydantic import BaseModel

from contracts.api_intake import Open311Error
from kit.privacy import scrub


class Format(StrEnum):
    JSON = "json"
    XML = "xml"


# The spec's content types ("text/xml" for XML); both in UTF-8, as the spec requires.
MEDIA_TYPES = {Format.JSON: "application/json", Format.XML: "text/xml"}
# What a list's items are called in XML, by the list's name.
ITEM_NAMES = {"services": "service", "service_requests": "request", "errors": "error",
              "endpoints": "endpoint", "formats": "format", "attributes": "attribute",
              "values": "value"}
# XML 1.0 cannot carry these characters at all, not even escaped (a quoted NUL in an error
# description would make the whole document unreadable): they become U+FFFD.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Open311Failure(Exception):
    """An answer in the spec's error format: HTTP `status`, one entry per description."""

    def __init__(self, status: int, *descriptions: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__("; ".join(descriptions))
        self.status = status
        self.descriptions = descriptions or ("error",)
        self.headers = headers


def format_of(fmt: str) -> Format:
    """The format a resource's extension asks for; any other is the spec's 404 (in XML, the
    format every Open311 server must speak)."""
    try:
        return Format(fmt)
    except ValueError:
        raise Open311Failure(404, f"unknown format '.{fmt}': use .xml or .json") from None


def format_of_path(path: str) -> Format:
    """The format to answer an error in: the path's extension when it is one we speak,
    otherwise XML."""
    return Format.JSON if path.endswith(".json") else Format.XML


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("\ufffd", str(value))


def _fill(parent: Element, name: str, value: Any) -> None:
    node = SubElement(parent, name)
    if value is None:
        return  # an empty element, as in the spec's examples (<account_id/>)
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _fill(node, str(key), inner)
    elif isinstance(value, list | tuple):
        for item in value:
            _fill(node, ITEM_NAMES.get(name, "item"), item)
    else:
        node.text = _text(value)


def to_xml(root: str, content: Any) -> bytes:
    """`content` (a list, a mapping, or one value) as an XML document under `root`, with the
    XML declaration naming UTF-8 that the spec asks for."""
    document = Element(root)
    if isinstance(content, list):
        for item in content:
            _fill(document, ITEM_NAMES[root], item)
    else:
        for key, value in content.items():
            _fill(document, str(key), value)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + tostring(document, encoding="unicode"
                                                                    ).encode("utf-8")


def render(fmt: Format, root: str, content: BaseModel | Sequence[BaseModel], status: int = 200,
           headers: Mapping[str, str] | None = None) -> Response:
    """One answer in `fmt`: a model (an object), or models (a list, the root holding them)."""
    data: Any = (content.model_dump(mode="json") if isinstance(content, BaseModel)
                 else [m.model_dump(mode="json") for m in content])
    if fmt is Format.XML:
        body = to_xml(root, data)
    else:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(body, status_code=status, headers=headers,
                    media_type=f"{MEDIA_TYPES[fmt]}; charset=utf-8")


def render_failure(fmt: Format, failure: Open311Failure) -> Response:
    # Scrubbed like every error answer: a description may quote what the client sent.
    errors = [Open311Error(code=failure.status, description=scrub(d))
              for d in failure.descriptions]
    return render(fmt, "errors", errors, failure.status, failure.headers)
