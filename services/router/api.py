"""Router's REST routes: preview a decision, show the active rules, browse jurisdictions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from contracts.channels import plausible_time
from contracts.events import CaseReported, PartyRef, RoutingDecision
from kit.auth import Principal, Scope, require
from kit.errors import ApiError, error_responses
from services.router.domain.jurisdictions import Level
from services.router.domain.policy import route_case
from services.router.rulebook import Rulebook


class PreviewRequest(CaseReported):
    """A CaseReported-shaped report; the ids and receipt time may be left out. Strings,
    amounts and times are bounded as intake bounds them: the preview takes what a caller
    types, not what intake has already checked."""

    model_config = ConfigDict(str_max_length=5000)

    case_id: str = Field(default="preview", max_length=64)
    external_id: str = Field(default="preview", max_length=128)
    received_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    text: str = Field(min_length=1, max_length=10000)
    amount: float | None = Field(default=None, ge=0, le=1e12, allow_inf_nan=False,
                                 description="Money at stake, CNY")
    parties: list[PartyRef] = Field(default_factory=list, max_length=200)
    prior_related: int = Field(default=0, ge=0, le=1000,
                               description="Prior related cases to assume (repeat detection)")

    @field_validator("received_at", "occurred_at", "deadline", mode="before")
    @classmethod
    def _iso_times_only(cls, value: Any) -> Any:
        # Pydantic would read a number as seconds since 1970; the schema says ISO 8601
        # (found by fuzzing).
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError("an ISO 8601 time with offset, not a number")
        return value

    @field_validator("received_at", "occurred_at", "deadline")
    @classmethod
    def _plausible(cls, value: datetime | None) -> datetime | None:
        # 9999-12-31T23:59:59-23:59 overflowed the deadline arithmetic (500).
        return plausible_time(value) if value is not None else None


class RulesView(BaseModel):
    version: str
    path: str
    loaded_at: datetime
    last_error: str | None = Field(description="Why the newest file was refused, if it was")
    rules: dict[str, Any]


class JurisdictionView(BaseModel):
    code: str
    name: str
    level: str
    parent: str | None


class JurisdictionDetail(JurisdictionView):
    ancestors: list[JurisdictionView]
    children: list[JurisdictionView]


def _view(node: Any) -> JurisdictionView:
    return JurisdictionView(code=node.code, name=node.name, level=node.level.value,
                            parent=node.parent)


def build_router(rulebook: Rulebook) -> APIRouter:
    router = APIRouter(tags=["routing"])

    @router.post("/v1/routing/preview", response_model=RoutingDecision,
                 responses=error_responses(401, 403, 422),
                 summary="The decision the active rules would make; nothing is stored")
    async def preview(body: PreviewRequest, _: Principal = require(Scope.ROUTING_READ)
                      ) -> RoutingDecision:
        report = CaseReported.model_validate(body.model_dump(exclude={"prior_related"}))
        return route_case(report, rulebook.rules, rulebook.tree,
                          prior_related=body.prior_related)

    @router.get("/v1/routing/rules", response_model=RulesView,
                responses=error_responses(401, 403),
                summary="The active rules file and its version")
    async def rules(_: Principal = require(Scope.ROUTING_READ)) -> RulesView:
        active = rulebook.rules
        return RulesView(version=active.version, path=str(rulebook.rules_path),
                         loaded_at=datetime.fromtimestamp(rulebook.loaded_at, UTC),
                         last_error=rulebook.last_error,
                         rules=active.to_dict())

    @router.post("/v1/routing/rules/reload", response_model=RulesView,
                 responses=error_responses(401, 403, 422),
                 summary="Load the rules file now (it also reloads by itself when it changes)")
    async def reload(request: Request, principal: Principal = require(Scope.ROUTING_ADMIN)
                     ) -> RulesView:
        error = rulebook.reload()
        if error:
            raise ApiError(422, "rules_invalid", "the rules file was refused; the active "
                           f"version stays {rulebook.rules.version}: {error}")
        return await rules(principal)

    @router.get("/v1/jurisdictions", response_model=list[JurisdictionView],
                responses=error_responses(401, 403, 422))
    async def jurisdictions(
        level: Level | None = None,
        parent: Annotated[str | None, Query(max_length=15, pattern=r"^\d+$")] = None,
        _: Principal = require(Scope.ROUTING_READ),
    ) -> list[JurisdictionView]:
        return [_view(n) for n in rulebook.tree.nodes(level=level, parent=parent)]

    @router.get("/v1/jurisdictions/{code}", response_model=JurisdictionDetail,
                responses=error_responses(401, 403, 404))
    async def jurisdiction(code: str, _: Principal = require(Scope.ROUTING_READ)
                           ) -> JurisdictionDetail:
        tree = rulebook.tree
        node = tree.get(code)
        if node is None:
            raise ApiError(404, "not_found", f"no jurisdiction {code}")
        return JurisdictionDetail(**_view(node).model_dump(),
                                  ancestors=[_view(a) for a in tree.ancestors(code)],
                                  children=[_view(c) for c in tree.children(code)])

    return router
