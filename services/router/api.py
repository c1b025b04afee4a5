"""Router's REST routes: preview a decision, show the active rules, browse jurisdictions,
export the corrected routings."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from contracts.channels import plausible_time
from contracts.enums import Category, Channel, CorrectionKind, Department, Risk, Tier
from contracts.events import CaseReported, GeoPoint, PartyRef, RoutingDecision
from contracts.times import Reported
from kit.auth import Principal, Scope, require
from kit.errors import ApiError, FieldError, error_responses
from kit.runtime import Runtime
from services.router.domain.jurisdictions import Jurisdiction, JurisdictionTree, Level
from services.router.domain.policy import route_case
from services.router.domain.quality import FirstDecision, Tally, lead_rule, measure
from services.router.rulebook import Rulebook
from services.router.store import decisions, reports


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
    loaded_at: Reported
    last_error: str | None = Field(description="Why the newest file was refused, if it was")
    rules: dict[str, Any]


class JurisdictionView(BaseModel):
    code: str
    name: str
    level: str
    parent: str | None
    centre: GeoPoint | None = Field(default=None, description="Its point on the map: a "
                                    "grid's centre, a village's middle, a town's the middle "
                                    "of its villages (none where the data has no shapes)")


class JurisdictionDetail(JurisdictionView):
    boundary: list[list[float]] = Field(
        default_factory=list, description="[longitude, latitude] corners in order, WGS 84 "
        "(a GeoJSON Polygon's ring without the closing corner); empty without one")
    ancestors: list[JurisdictionView]
    children: list[JurisdictionView]


def _view(node: Jurisdiction, tree: JurisdictionTree) -> JurisdictionView:
    centre = tree.centre(node.code)
    return JurisdictionView(code=node.code, name=node.name, level=node.level.value,
                            parent=node.parent,
                            centre=GeoPoint(lon=centre[0], lat=centre[1]) if centre else None)


class RouterChoice(BaseModel):
    """What the router first decided for the case."""

    category: Category
    risk: Risk
    tier: Tier
    lead_department: Department
    rules_fired: list[str]


class FinalChoice(BaseModel):
    """Where the case stands after its corrections (the label)."""

    category: Category
    risk: Risk
    tier: Tier
    lead_department: Department
    cooperating_departments: list[Department]


class CorrectedCase(BaseModel):
    case_id: str
    text: str = Field(description="The report's text as the router stored it (masked)")
    channel: Channel
    kind: CorrectionKind = Field(description="The latest correction: return (退回, routed "
                                 "again by the router), reassign (改派) or dispatch (人工分派)")
    corrected_at: Reported
    corrected_by: str
    reason: str
    router: RouterChoice
    final: FinalChoice


class CorrectionsPage(BaseModel):
    items: list[CorrectedCase]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


CORRECTIONS_DESCRIPTION = """\
Every case whose routing was corrected, one item per case: the router's first decision,
the final one (after returns routed again by the router, or a dispatcher's assignment), the
latest correction and who made it, so that a policy editor can turn them into rules, and
`scripts/routing_accuracy.py --corrections` can measure the rules against them (label =
final). A case still waiting in the dispatch queue has no final decision yet and is left
out. Ordered by case id; `format=csv` (or `Accept: text/csv`) for a spreadsheet."""

CSV_COLUMNS = ["case_id", "channel", "kind", "corrected_at", "corrected_by", "reason",
               "router_category", "router_risk", "router_tier", "router_lead_department",
               "router_rules_fired", "final_category", "final_risk", "final_tier",
               "final_lead_department", "final_cooperating_departments", "text"]


def _corrections_csv(page: CorrectionsPage) -> str:
    out = io.StringIO()
    out.write("\ufeff")  # so spreadsheets read UTF-8
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in page.items:
        r, f = item.router, item.final
        writer.writerow([item.case_id, item.channel.value, item.kind.value,
                         item.corrected_at.isoformat(), item.corrected_by, item.reason,
                         r.category.value, r.risk.value, r.tier.value, r.lead_department.value,
                         ";".join(r.rules_fired), f.category.value, f.risk.value, f.tier.value,
                         f.lead_department.value,
                         ";".join(d.value for d in f.cooperating_departments), item.text])
    return out.getvalue()


def _corrected_case(case_id: str, report: dict[str, Any], rows: list[Any]) -> CorrectedCase:
    """One case's item from its decision rows (in round order)."""
    first, last = rows[0], rows[-1]
    latest = [row for row in rows if row.kind is not None][-1]
    router = RoutingDecision.model_validate(first.decision)
    final = RoutingDecision.model_validate(last.decision)
    correction = latest.correction or {}
    return CorrectedCase(
        case_id=case_id, text=str(report.get("text", "")), channel=Channel(report["channel"]),
        kind=CorrectionKind(latest.kind), corrected_at=latest.routed_at,
        corrected_by=str(correction.get("by", "")), reason=str(correction.get("reason", "")),
        router=RouterChoice(category=router.category, risk=router.risk, tier=router.tier,
                            lead_department=router.lead_department,
                            rules_fired=router.rules_fired),
        final=FinalChoice(category=final.category, risk=final.risk, tier=final.tier,
                          lead_department=final.lead_department,
                          cooperating_departments=final.cooperating_departments))


class QualityFigures(BaseModel):
    routed: int = Field(description="Cases the router decided first in the period")
    returned: int = Field(description="...of which a lead department returned (退回)")
    reassigned: int = Field(description="...reassigned or dispatched by hand (改派 / 人工分派)")
    corrected: int = Field(description="...corrected in any of these ways")
    flagged: int = Field(description="...flagged for review (待研判) at the first decision")
    accuracy_as_seen: float = Field(description="1 − corrected / routed: right as staff saw it")
    return_rate: float
    reassignment_rate: float
    review_flag_rate: float


class QualityRow(QualityFigures):
    key: str = Field(description="The category, the lead rule or the month (YYYY-MM)")


class RoutingQuality(BaseModel):
    routed_from: Reported
    routed_to: Reported
    overall: QualityFigures
    by_category: list[QualityRow]
    by_rule: list[QualityRow]
    by_month: list[QualityRow]


QUALITY_DESCRIPTION = """How good the routing was as staff saw it: of the cases the router decided first between
`routed_from` and `routed_to` (default: the last 90 days, at most 400 days), how many a lead
department returned, how many a dispatcher reassigned or dispatched by hand, and how many
the router flagged for review, overall and by category, by the rule that chose the lead
department and by month. A correction made after the period still counts against the
decision it corrected."""

MAX_QUALITY_PERIOD = timedelta(days=400)


def _rows(tallies: dict[str, Tally]) -> list[QualityRow]:
    return [QualityRow(key=key, **tally.figures())
            for key, tally in sorted(tallies.items(), key=lambda kv: -kv[1].routed)]


def build_router(rulebook: Rulebook) -> APIRouter:
    router = APIRouter(tags=["routing"])

    @router.get("/v1/routing/quality", response_model=RoutingQuality,
                responses=error_responses(401, 403, 422),
                summary="Routing accuracy as staff saw it (returns, reassignments) and the "
                "review-flag rate, by category, rule and month",
                description=QUALITY_DESCRIPTION)
    async def quality(
        request: Request,
        routed_from: Annotated[AwareDatetime | None, Query(
            description="Start of the period (ISO 8601 with an offset)")] = None,
        routed_to: Annotated[AwareDatetime | None, Query(
            description="End of the period (ISO 8601 with an offset)")] = None,
        _: Principal = require(Scope.ROUTING_READ),
    ) -> RoutingQuality:
        runtime: Runtime = request.app.state.runtime
        end = routed_to or datetime.now(UTC)
        start = routed_from or end - timedelta(days=90)
        if start >= end:
            raise ApiError(422, "invalid_period", "routed_from must be before routed_to",
                           fields=[FieldError(field="routed_from", reason="after routed_to")])
        if end - start > MAX_QUALITY_PERIOD:
            raise ApiError(422, "period_too_long", "the period is at most 400 days",
                           fields=[FieldError(field="routed_from",
                                              reason="at most 400 days before routed_to")])
        first = select(decisions.c.case_id, decisions.c.decision, decisions.c.routed_at).where(
            decisions.c.routing_round == 1, decisions.c.routed_at >= start,
            decisions.c.routed_at < end)
        corrected = select(decisions.c.case_id, decisions.c.kind).where(
            decisions.c.kind.is_not(None),
            decisions.c.case_id.in_(first.with_only_columns(decisions.c.case_id)))
        async with runtime.sessions() as session:
            firsts = (await session.execute(first)).all()
            kinds: dict[str, set[str]] = {}
            for row in (await session.execute(corrected)).all():
                kinds.setdefault(row.case_id, set()).add(row.kind)
        measured = measure((FirstDecision(
            case_id=row.case_id, routed_at=row.routed_at,
            category=str(row.decision.get("category")),
            lead_rule=lead_rule(row.decision.get("rules_fired", [])),
            flagged=bool((row.decision.get("review") or {}).get("flagged")))
            for row in firsts), kinds)
        return RoutingQuality(
            routed_from=start, routed_to=end,
            overall=QualityFigures(**measured.overall.figures()),
            by_category=_rows(measured.by_category), by_rule=_rows(measured.by_rule),
            by_month=_rows(measured.by_month))

    @router.get("/v1/routing/corrections", response_model=CorrectionsPage,
                responses={**error_responses(401, 403, 422),
                           200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                                 "description": "The corrected cases, as JSON or CSV"}},
                summary="Cases whose routing staff corrected: the router's decision, the "
                "final one, who changed it and why", description=CORRECTIONS_DESCRIPTION)
    async def corrections(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
        cursor: Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00]*$",
                                            description="next_cursor of the page before")
                          ] = None,
        format: Annotated[Literal["json", "csv"] | None, Query(
            description="default: JSON, or CSV when the Accept header asks for text/csv")
        ] = None,
        _: Principal = require(Scope.ROUTING_READ),
    ) -> Any:
        runtime: Runtime = request.app.state.runtime
        latest = decisions.alias("latest")
        corrected = select(decisions.c.case_id).where(decisions.c.kind.is_not(None))
        query = (select(reports.c.case_id, reports.c.report)
                 .join(latest, (latest.c.case_id == reports.c.case_id)
                       & (latest.c.routing_round == reports.c.routing_round))
                 .where(reports.c.case_id.in_(corrected), latest.c.awaiting_dispatch.is_(False))
                 .order_by(reports.c.case_id).limit(limit + 1))
        if cursor:
            query = query.where(reports.c.case_id > cursor)
        async with runtime.sessions() as session:
            found = (await session.execute(query)).all()
            page_rows = found[:limit]
            ids = [row.case_id for row in page_rows]
            rounds = (await session.execute(
                select(decisions).where(decisions.c.case_id.in_(ids))
                .order_by(decisions.c.case_id, decisions.c.routing_round))).all()
        by_case: dict[str, list[Any]] = {}
        for row in rounds:
            by_case.setdefault(row.case_id, []).append(row)
        page = CorrectionsPage(
            items=[_corrected_case(row.case_id, row.report, by_case[row.case_id])
                   for row in page_rows if by_case.get(row.case_id)],
            next_cursor=ids[-1] if len(found) > limit else None)
        wants_csv = format == "csv" or (format is None and "text/csv" in
                                        request.headers.get("accept", ""))
        if wants_csv:
            return Response(_corrections_csv(page), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": 'attachment; filename="fengqiao-'
                                     f'corrections-{date.today().isoformat()}.csv"'})
        return page

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
        # An intake key may read the codes it sends as region_code (a hotline's key).
        _: Principal = require(Scope.ROUTING_READ, Scope.INTAKE_WRITE),
    ) -> list[JurisdictionView]:
        tree = rulebook.tree
        return [_view(n, tree) for n in tree.nodes(level=level, parent=parent)]

    @router.get("/v1/jurisdictions/{code}", response_model=JurisdictionDetail,
                responses=error_responses(401, 403, 404))
    async def jurisdiction(code: str,
                           _: Principal = require(Scope.ROUTING_READ, Scope.INTAKE_WRITE)
                           ) -> JurisdictionDetail:
        tree = rulebook.tree
        node = tree.get(code)
        if node is None:
            raise ApiError(404, "not_found", f"no jurisdiction {code}")
        return JurisdictionDetail(**_view(node, tree).model_dump(),
                                  boundary=[list(corner) for corner in tree.boundary(code)],
                                  ancestors=[_view(a, tree) for a in tree.ancestors(code)],
                                  children=[_view(c, tree) for c in tree.children(code)])

    return router
