"""Native payloads of the intake channels, exactly as the source systems send them."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, HttpUrl

from contracts.enums import Urgency

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{2,3}-?\d{7,8}$")


def normalise_phone(value: str) -> str:
    """Strip spaces, dashes in mobiles and the +86/0086 prefix; raise ValueError if not a phone."""
    raw = re.sub(r"[\s()]", "", value)
    raw = re.sub(r"^(\+86|0086)", "", raw)
    compact = raw.replace("-", "")
    if _MOBILE.match(compact):
        return compact
    if _LANDLINE.match(raw):
        return raw
    raise ValueError("not a mainland China mobile (11 digits, 1[3-9]...) or landline (0xx-xxxxxxx)")


Phone = Annotated[str, AfterValidator(normalise_phone)]
RegionCode = Annotated[str, Field(pattern=r"^\d{6}(\d{3}(\d{3})?)?$",
                                  description="Administrative division code: 6, 9 or 12 digits")]


class HotlineWorkOrder(BaseModel):
    """A 12345 hotline work order (工单) as the hotline system sends it."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    order_no: str = Field(min_length=1, max_length=64, pattern=r"^[\w\-./]+$",
                          description="The hotline's work order number (工单编号)")
    content: str = Field(min_length=1, max_length=5000, description="诉求内容")
    received_at: AwareDatetime = Field(description="When the hotline took the call, with offset")
    caller_name: str | None = Field(default=None, max_length=64)
    caller_phone: Phone | None = None
    category: str | None = Field(default=None, max_length=64,
                                 description="The hotline's own classification text")
    urgency: Urgency = Urgency.NORMAL
    address: str | None = Field(default=None, max_length=256)
    region_code: RegionCode | None = None
    deadline: AwareDatetime | None = None
    callback_url: HttpUrl | None = Field(default=None, description="办结反馈 URL")
