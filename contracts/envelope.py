"""CloudEvents 1.0 envelope (structured mode) used for every event on every topic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from contracts.times import Moment

DataT = TypeVar("DataT", bound=BaseModel)

SOURCE_PREFIX = "urn:fengqiao:"


class CloudEvent(BaseModel, Generic[DataT]):
    """A CloudEvents 1.0 event; subclasses fix `type` and the model of `data`."""

    model_config = ConfigDict(extra="ignore")

    event_type: ClassVar[str] = ""

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(description="Unique per event; consumers use it as their idempotency key.")
    source: str = Field(description="The producing service, e.g. urn:fengqiao:intake.")
    type: str
    subject: str | None = Field(default=None, description="The case id the event is about.")
    time: Moment
    datacontenttype: Literal["application/json"] = "application/json"
    data: DataT

    @classmethod
    def wrap(cls, data: DataT, *, source: str, subject: str | None = None,
             event_id: str | None = None, time: datetime | None = None) -> Self:
        """Build an event of this class around `data` with a fresh id and the current time."""
        return cls(
            id=event_id or str(uuid.uuid4()),
            source=SOURCE_PREFIX + source,
            type=cls.event_type,
            subject=subject,
            time=time or datetime.now(UTC),
            data=data,
        )

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        schema = cls.model_json_schema(mode="serialization")
        schema["properties"]["type"] = {"const": cls.event_type, "title": "Type", "type": "string"}
        return schema
