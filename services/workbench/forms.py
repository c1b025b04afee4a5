"""The form of each lifecycle step: exactly the fields the step needs (DOMAIN.md, and
mediation's transitions API), with Chinese labels. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contracts.enums import Status
from services.workbench.labels import DEPARTMENTS, REFERRALS, STEP_ZH, TIERS

S = Status


@dataclass(frozen=True)
class Field:
    name: str          # the API's: "reason" (the request's), anything else is data.<name>
    label: str
    kind: str = "text"  # text, textarea, number, select
    required: bool = False
    options: dict[str, str] = field(default_factory=dict)
    hint: str = ""
    minimum: float | None = None
    maximum: float | None = None


NOTES = Field("notes", "备注", "textarea")

STEP_FIELDS: dict[Status, tuple[Field, ...]] = {
    S.ACCEPTED: (Field("mediator", "调解员"), NOTES),
    S.IN_MEDIATION: (Field("mediator", "调解员"), NOTES),
    S.RESOLVED: (Field("agreement", "调解协议内容", "textarea", required=True),
                 Field("agreement_amount", "协议金额（元，无金额填0）", "number", required=True,
                       minimum=0),
                 NOTES),
    S.FAILED: (Field("failure_reason", "调解失败原因", "textarea", required=True), NOTES),
    S.ESCALATED: (Field("reason", "上提理由", "textarea"), NOTES),
    S.REFERRED: (Field("referral", "转办去向", "select", required=True, options=REFERRALS),
                 NOTES),
    S.WITHDRAWN: (Field("reason", "撤回原因", "textarea"), NOTES),
    S.RETURNED: (Field("reason", "退回理由", "textarea", required=True),
                 Field("suggested_department", "建议承办部门", "select", options=DEPARTMENTS),
                 NOTES),
    S.RETURNED_TO_SOURCE: (Field("reason", "退单理由", "textarea", required=True), NOTES),
    S.CLOSED: (NOTES,),
    S.VISITED: (Field("visit_notes", "回访记录", "textarea", required=True), NOTES),
    S.RATED: (Field("satisfaction", "满意度（1–5分）", "select", required=True,
                    options={str(n): f"{n}分" for n in (5, 4, 3, 2, 1)}), NOTES),
    S.ARCHIVED: (NOTES,),
}

ASSIGNMENT_FIELDS: tuple[Field, ...] = (
    Field("lead_department", "牵头部门", "select", required=True, options=DEPARTMENTS),
    Field("tier", "层级", "select", required=True, options=TIERS),
    Field("reason", "分派理由", "textarea", required=True),
)


@dataclass(frozen=True)
class StepForm:
    to_status: str
    label: str
    fields: tuple[Field, ...]


def step_forms(allowed: list[str]) -> list[StepForm]:
    return [StepForm(s, STEP_ZH.get(s, s), STEP_FIELDS.get(Status(s), (NOTES,)))
            for s in allowed if Status(s) in STEP_FIELDS]


def missing(fields: tuple[Field, ...], form: dict[str, str]) -> dict[str, str]:
    """Required fields left empty, checked here first so the person gets the error beside the
    field at once; mediation checks again."""
    return {f.name: "必填" for f in fields if f.required and not form.get(f.name, "").strip()}


def transition_body(to_status: str, form: dict[str, str], actor: str,
                    expected_version: int) -> dict[str, Any]:
    """The transitions API's request from a step's form: only the step's fields, empty ones
    left out."""
    body: dict[str, Any] = {"to_status": to_status, "actor": actor,
                            "expected_version": expected_version, "data": {}}
    for f in STEP_FIELDS.get(Status(to_status), (NOTES,)):
        value = form.get(f.name, "").strip()
        if not value:
            continue
        if f.name == "reason":
            body["reason"] = value
        elif f.name == "satisfaction":
            body["data"][f.name] = int(value) if value.isdigit() else value
        elif f.kind == "number":
            try:
                body["data"][f.name] = float(value)
            except ValueError:
                body["data"][f.name] = value  # mediation names the field in its 422
        else:
            body["data"][f.name] = value
    return body


def field_of(api_field: str) -> str:
    """The form field an API error names: `data.agreement` is `agreement`."""
    for prefix in ("body.", "data."):
        if api_field.startswith(prefix):
            api_field = api_field[len(prefix):]
    return api_field.split(".", 1)[0]
