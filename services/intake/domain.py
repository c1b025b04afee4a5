"""From a channel's native payload to the canonical CaseReported: pure functions, no I/O."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import orjson
from pydantic import BaseModel

from contracts.channels import HotlineWorkOrder
from contracts.enums import Channel, PartyRole
from contracts.events import CaseReported, PartyRef
from kit.privacy import keyed_hash, mask_phone


def new_case_id(now: datetime) -> str:
    """FQ + receipt date + 64 random bits: short enough to read out in an SMS, never reused."""
    return f"FQ{now:%Y%m%d}-{secrets.token_hex(8).upper()}"


def content_fingerprint(payload: BaseModel) -> str:
    """Equal for the same report re-sent, different when any field of it changed."""
    canonical = orjson.dumps(payload.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True)
class ChannelAdapter:
    """How one channel's native payload becomes a case."""

    channel: Channel
    native: type[BaseModel]
    external_id_field: str

    def external_id(self, payload: BaseModel) -> str:
        return str(getattr(payload, self.external_id_field))


def hotline_to_case(order: HotlineWorkOrder, case_id: str, hash_secret: str) -> CaseReported:
    reporter = None
    if order.caller_name or order.caller_phone:
        reporter = PartyRef(
            name=order.caller_name,
            role=PartyRole.REPORTER,
            phone_masked=mask_phone(order.caller_phone) if order.caller_phone else None,
            phone_hash=keyed_hash(hash_secret, "phone", order.caller_phone)
            if order.caller_phone else None,
        )
    return CaseReported(
        case_id=case_id,
        channel=Channel.HOTLINE_12345,
        external_id=order.order_no,
        received_at=order.received_at,
        text=order.content,
        channel_category=order.category,
        urgency=order.urgency,
        address=order.address,
        region_code=order.region_code,
        reporter=reporter,
        deadline=order.deadline,
        callback_url=str(order.callback_url) if order.callback_url else None,
    )


ADAPTERS: dict[Channel, ChannelAdapter] = {
    Channel.HOTLINE_12345: ChannelAdapter(Channel.HOTLINE_12345, HotlineWorkOrder, "order_no"),
}


def to_case(channel: Channel, payload: BaseModel, case_id: str, hash_secret: str) -> CaseReported:
    """The canonical case for a validated native payload of `channel`."""
    if channel is Channel.HOTLINE_12345 and isinstance(payload, HotlineWorkOrder):
        return hotline_to_case(payload, case_id, hash_secret)
    raise ValueError(f"no mapping for channel {channel}")
