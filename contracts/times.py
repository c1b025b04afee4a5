"""One clock for everything fengqiao writes: times in China Standard Time with their offset
(`2026-12-07T17:30:00+08:00`), in every event, callback and API answer. The instant is the
same as in UTC; a hotline or a department shows it to people as it is, with no conversion.
Times are read in any offset (and stored in UTC)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated

from pydantic import AwareDatetime, PlainSerializer

CHINA = timezone(timedelta(hours=8))


def in_china(value: datetime) -> datetime:
    """`value` at +08:00 (a naive value is left as it is: nothing says which zone it is in)."""
    return value.astimezone(CHINA) if value.tzinfo is not None else value


_AT_PLUS_EIGHT = PlainSerializer(in_china, return_type=datetime, when_used="json")

# A time a client must send with its offset, written back at +08:00.
Moment = Annotated[AwareDatetime, _AT_PLUS_EIGHT]
# A time fengqiao reports (from its database, in UTC), written at +08:00.
Reported = Annotated[datetime, _AT_PLUS_EIGHT]
