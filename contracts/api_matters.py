"""Mediation's REST models for repeat reports and leaders' work: related cases (关联),
supervision notices issued by hand (督办 / 催办) and their answers (反馈), and leader
ownership (领导包案)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.api_mediation import CaseSummary
from contracts.enums import Category, Channel, Department, NoticeLevel, Status
from contracts.times import Moment, Reported


def _refuse_nul(value: object) -> object:
    # No database stores NUL in text (PostgreSQL refuses it): a clear 422 instead of a 500.
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class RelatedCase(BaseModel):
    case_id: str
    channel: Channel
    external_id: str
    received_at: Reported
    status: Status
    category: Category | None
    lead_department: Department | None
    merged_into: str | None = None
    relations: list[str] = Field(description="Why it is related: same_party (the same reporter "
                                 "or party, by the keyed hash of a phone or id number), "
                                 "same_address, same_place (within 100 m), "
                                 "same_external_matter, merged")


class RelatedCases(BaseModel):
    case_id: str
    items: list[RelatedCase]


class NoticeRequest(BaseModel):
    """A supervision notice a leader issues on a case."""

    model_config = ConfigDict(extra="forbid")

    level: NoticeLevel = Field(description="reminder (提示), urge (催办), supervise (督办), "
                               "listed (挂牌督办)")
    asked: str = Field(min_length=1, max_length=2000, description="What is asked of the lead "
                       "department")
    answer_by: Moment = Field(description="By when the lead department answers (反馈); "
                                     "with an offset, in the future")
    actor: str | None = Field(default=None, min_length=1, max_length=128,
                              description="Who issues it (default: the key's name)")

    @field_validator("asked", "actor")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        return _refuse_nul(value)


class NoticeAnswer(BaseModel):
    """The lead department's answer (反馈) to a supervision notice."""

    model_config = ConfigDict(extra="forbid")

    answer: str = Field(min_length=1, max_length=4000)
    actor: str | None = Field(default=None, min_length=1, max_length=128,
                              description="Who answers (default: the key's name)")

    @field_validator("answer", "actor")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        return _refuse_nul(value)


class NoticeView(BaseModel):
    notice_id: str
    case_id: str
    level: NoticeLevel
    status: str = Field(description="open or answered")
    asked: str
    department: Department | None = Field(description="The department it presses (the lead "
                                          "department when it was issued)")
    issued_by: str
    issued_at: Reported
    answer_by: Reported
    raises: int = Field(description="Times an answer was missed and the level raised")
    answer: str | None
    answered_by: str | None
    answered_at: Reported | None
    answered_on_time: bool | None


class NoticeList(BaseModel):
    items: list[NoticeView]


class OwnershipRequest(BaseModel):
    """A leader takes ownership of a case (领导包案), or gives it up."""

    model_config = ConfigDict(extra="forbid")

    release: bool = Field(default=False, description="true: give the case up")


class OwnedCases(BaseModel):
    items: list[CaseSummary]


class MergeRequest(BaseModel):
    """A dispatcher merges duplicate reports of one matter into this (main) case."""

    model_config = ConfigDict(extra="forbid")

    case_ids: list[str] = Field(min_length=1, max_length=50, description="The reports to "
                                "merge into the main case (each closes as merged into it)")
    reason: str = Field(min_length=1, max_length=2000)
    actor: str | None = Field(default=None, min_length=1, max_length=128,
                              description="Who merges (default: the key's name)")

    @field_validator("reason", "actor")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        return _refuse_nul(value)

    @field_validator("case_ids")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        for case_id in value:
            if not 1 <= len(case_id) <= 64 or "\x00" in case_id:
                raise ValueError("each case id has 1 to 64 characters")
        return list(dict.fromkeys(value))


class UnmergeRequest(BaseModel):
    """A dispatcher takes a report out of the matter it was merged into."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)
    actor: str | None = Field(default=None, min_length=1, max_length=128)

    @field_validator("reason", "actor")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        return _refuse_nul(value)


class MergeResult(BaseModel):
    case: CaseSummary = Field(description="The main case")
    merged: list[CaseSummary] = Field(description="The reports merged into it, after the step")
