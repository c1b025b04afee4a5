"""Notify's REST routes: webhook subscriptions and the delivery log."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import AnyHttpUrl, BaseModel, Field
from sqlalchemy import select, update

from contracts.enums import Department
from kit.auth import Principal, Scope, require
from kit.errors import ApiError, error_responses
from kit.runtime import Runtime
from services.notify.domain import new_secret
from services.notify.handlers import KIND_ROUTED
from services.notify.store import Subscription, deliveries, subscriptions

KINDS = (KIND_ROUTED,)


class SubscriptionIn(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    url: AnyHttpUrl = Field(description="Where events are POSTed")
    kinds: list[str] = Field(default=[KIND_ROUTED], min_length=1,
                             description=f"Event kinds: {', '.join(KINDS)}")
    departments: list[Department] = Field(default=[], description="Empty: every department")


class SubscriptionOut(BaseModel):
    id: str
    name: str
    url: str
    kinds: list[str]
    departments: list[Department]
    created_at: datetime


class SubscriptionCreated(SubscriptionOut):
    secret: str = Field(description="Signing secret (Standard Webhooks); shown only once")


class DeliveryOut(BaseModel):
    id: int
    subscription_id: str
    event_id: str
    case_id: str
    kind: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: int | None


def build_router() -> APIRouter:
    router = APIRouter(tags=["notify"])

    @router.post("/v1/subscriptions", status_code=201, response_model=SubscriptionCreated,
                 responses=error_responses(401, 403, 422))
    async def create_subscription(body: SubscriptionIn, request: Request,
                                  _: Principal = require(Scope.SUBSCRIPTIONS)
                                  ) -> SubscriptionCreated:
        unknown = sorted(set(body.kinds) - set(KINDS))
        if unknown:
            raise ApiError(422, "validation_failed", f"unknown kinds: {', '.join(unknown)}")
        runtime: Runtime = request.app.state.runtime
        sub = Subscription(id="sub_" + secrets.token_hex(8), name=body.name, url=str(body.url),
                           secret=new_secret(), kinds=sorted(set(body.kinds)),
                           departments=sorted({d.value for d in body.departments}),
                           created_at=datetime.now(UTC))
        async with runtime.sessions() as session, session.begin():
            session.add(sub)
        return SubscriptionCreated.model_validate(sub, from_attributes=True)

    @router.get("/v1/subscriptions", response_model=list[SubscriptionOut],
                responses=error_responses(401, 403))
    async def list_subscriptions(request: Request, _: Principal = require(Scope.SUBSCRIPTIONS)
                                 ) -> list[SubscriptionOut]:
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session:
            rows = (await session.execute(select(subscriptions)
                                          .where(subscriptions.c.deleted_at.is_(None))
                                          .order_by(subscriptions.c.created_at))).all()
        return [SubscriptionOut.model_validate(r, from_attributes=True) for r in rows]

    @router.delete("/v1/subscriptions/{subscription_id}", status_code=204,
                   responses=error_responses(401, 403, 404))
    async def delete_subscription(subscription_id: str, request: Request,
                                  _: Principal = require(Scope.SUBSCRIPTIONS)) -> Response:
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session, session.begin():
            result = await session.execute(
                update(subscriptions).where(subscriptions.c.id == subscription_id,
                                            subscriptions.c.deleted_at.is_(None))
                .values(deleted_at=datetime.now(UTC)))
        if not result.rowcount:  # type: ignore[attr-defined]
            raise ApiError(404, "not_found", f"no subscription {subscription_id}")
        return Response(status_code=204)

    @router.get("/v1/deliveries", response_model=DeliveryPage,
                responses=error_responses(401, 403, 422))
    async def list_deliveries(
        request: Request,
        subscription_id: Annotated[str | None, Query(max_length=32)] = None,
        case_id: Annotated[str | None, Query(max_length=64)] = None,
        status: Annotated[str | None, Query(pattern="^(pending|succeeded|dead)$")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        cursor: Annotated[int | None, Query(ge=0)] = None,
        _: Principal = require(Scope.DELIVERIES_READ),
    ) -> DeliveryPage:
        runtime: Runtime = request.app.state.runtime
        query = select(deliveries).order_by(deliveries.c.id.desc()).limit(limit + 1)
        for column, value in ((deliveries.c.subscription_id, subscription_id),
                              (deliveries.c.case_id, case_id), (deliveries.c.status, status)):
            if value is not None:
                query = query.where(column == value)
        if cursor is not None:
            query = query.where(deliveries.c.id < cursor)
        async with runtime.sessions() as session:
            rows = (await session.execute(query)).all()
        page = rows[:limit]
        return DeliveryPage(items=[DeliveryOut.model_validate(r, from_attributes=True)
                                   for r in page],
                            next_cursor=page[-1].id if len(rows) > limit else None)

    return router
