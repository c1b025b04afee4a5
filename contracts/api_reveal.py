"""Intake's route for a case's phone and id numbers in clear (显示号码): the request with its
reason, the answer, and the audit entries. Everything else outside intake carries the
numbers masked (docs/privacy.md)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.enums import PartyRole
from contracts.times import Reported

# How the case view (mediation, GET /v1/cases/{case_id}) and this route name a person:
# the report's reporter, or the n-th of its parties, in the order the event carries them.
PERSON_PATTERN = r"^(reporter|parties\.[0-9]{1,3})$"


class RevealRequest(BaseModel):
    """Why the numbers are needed, and whose: audited with the key that asks."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500, description="Why the numbers are needed "
                        "(e.g. 电话通知双方到场调解): recorded in the audit log, numbers masked")
    person: str | None = Field(default=None, pattern=PERSON_PATTERN, description="reporter or "
                               "parties.N as the case view names them; none: everyone in the case")

    @field_validator("reason")
    @classmethod
    def _a_real_reason(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value.strip()


class RevealedPerson(BaseModel):
    person: str = Field(description="reporter or parties.N", examples=["parties.0"])
    name: str | None
    role: PartyRole
    phone: str | None = Field(description="In clear, normalised (13800138000, 010-12345678)")
    id_number: str | None = Field(description="In clear (18 characters)")


class RevealAnswer(BaseModel):
    case_id: str
    people: list[RevealedPerson] = Field(description="Those asked for who have a phone or id "
                                         "number; empty when the case names no number")


class RevealOutcome(StrEnum):
    REVEALED = "revealed"
    REFUSED = "refused"  # the key may see the case but is not its lead department's
    NOT_FOUND = "not_found"  # no such case, or not one the key may see
    ERASED = "erased"  # its personal data was erased: nothing to reveal


class RevealEntry(BaseModel):
    id: int
    at: Reported
    key_id: str
    key_name: str = Field(description="The key's name: workbench:<username> for staff")
    case_id: str
    person: str | None
    reason: str
    outcome: RevealOutcome


class RevealLog(BaseModel):
    items: list[RevealEntry]
    next_cursor: int | None = Field(description="Pass as `cursor` for the next (older) page")
