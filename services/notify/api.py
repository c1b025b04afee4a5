"""Notify's REST routes: webhook subscriptions (with secret rotation), hotline integrations'
callback endpoints (likewise), the delivery log with every attempt, and redelivery."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import Column, ColumnElement, Select, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.api_notify import (
    AttemptOut,
    DeliveryDetail,
    DeliveryOut,
    DeliveryPage,
    DeliveryStatus,
    DeliveryTarget,
    HotlineEndpointCreated,
    HotlineEndpointIn,
    HotlineEndpointOut,
    HotlineStep,
    SecretRotated,
    SubscriptionCreated,
    SubscriptionIn,
    SubscriptionOut,
)
from kit.auth import Principal, Scope, require
from kit.errors import ApiError, FieldError, error_responses
from kit.runtime import Runtime
from services.notify.destinations import Destinations
from services.notify.domain import SECRET_OVERLAP, new_secret, without_query
from services.notify.handlers import SubscriptionBook
from services.notify.store import (
    DEAD,
    HOTLINE_FEEDBACK,
    PENDING,
    SUCCEEDED,
    WEBHOOK,
    Subscription,
    attempts,
    cases,
    create_endpoint,
    deliveries,
    endpoints,
    subscriptions,
)

# Delivery ids are BIGINT: a larger number in a request is refused, not sent to the database.
MAX_ID = 2**63 - 1
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ID)]
# No database stores NUL in text: such a value is refused here, not sent to PostgreSQL (500).
NO_NUL = r"^[^\x00]*$"
SubscriptionId = Annotated[str, Path(max_length=32, pattern=NO_NUL)]


def _check_within_limits(body: SubscriptionIn, principal: Principal) -> None:
    """A key limited to channels, departments or jurisdictions subscribes only within them:
    what a subscription receives is what the key could read through the case API."""
    problems: list[FieldError] = []
    if body.authorised_personal_data and Scope.ADMIN not in principal.scopes:
        raise ApiError(403, "forbidden", "Only an admin key may authorise a subscription for "
                       "personal data.", fields=[FieldError(
                           field="authorised_personal_data", reason="requires an admin key")])
    if principal.channels:
        outside = {c.value for c in body.channels} - principal.channels
        if not body.channels or outside:
            problems.append(FieldError(field="channels", reason="this key may subscribe "
                                       "only to " + ", ".join(sorted(principal.channels))))
    if principal.departments:
        outside = {d.value for d in body.departments} - principal.departments
        if not body.departments or outside:
            problems.append(FieldError(field="departments", reason="this key may subscribe "
                                       "only to " + ", ".join(sorted(principal.departments))))
    if principal.jurisdictions:
        inside = [j for j in body.jurisdictions
                  if any(j.startswith(p) for p in principal.jurisdictions)]
        if not body.jurisdictions or len(inside) < len(body.jurisdictions):
            problems.append(FieldError(field="jurisdictions", reason="this key may subscribe "
                                       "only within " + ", ".join(sorted(principal.jurisdictions))))
    if problems:
        raise ApiError(403, "forbidden", "The subscription reaches beyond this key's limits.",
                       fields=problems)


def _refuse_denied(runtime: Runtime, url: str) -> None:
    """422 naming `url` for an address notify may not send to (an IP literal in a denied
    network; a name is checked again before every attempt)."""
    refusal = Destinations(runtime.settings.webhook_denied_networks).refusal_of_literal(url)
    if refusal:
        raise ApiError(422, "validation_failed", "notify may not send to this URL",
                       [FieldError(field="url", reason=f"{refusal} "
                                   "(FQ_WEBHOOK_DENIED_NETWORKS)")])


async def _rotate_secret(session: AsyncSession, key: Column[Any], key_value: str,
                         current: str) -> SecretRotated:
    """A new secret for the subscription or hotline endpoint whose `key` column is
    `key_value`; the current one keeps signing (a second signature) for SECRET_OVERLAP."""
    secret, expires = new_secret(), datetime.now(UTC) + SECRET_OVERLAP
    await session.execute(update(key.table).where(key == key_value).values(
        secret=secret, previous_secret=current, previous_secret_expires_at=expires))
    return SecretRotated(id=key_value, secret=secret, previous_secret_expires_at=expires)


def _visible_subscriptions(principal: Principal) -> Select[Any]:
    """Limited keys see the subscriptions they created; others see all."""
    query = select(subscriptions).where(subscriptions.c.deleted_at.is_(None))
    if principal.is_limited:
        query = query.where(subscriptions.c.owner == principal.key_id)
    return query


def _subscription_out(row: Any) -> SubscriptionOut:
    return SubscriptionOut.model_validate(row, from_attributes=True)


def _delivery_out(row: Any) -> DeliveryOut:
    values = dict(row._mapping)
    values["subscription_id"] = row.subscription_id if row.target == WEBHOOK else None
    values["url"] = without_query(row.url) if row.url else None
    values["integration_key_id"] = row.endpoint_key_id
    values["next_attempt_at"] = (datetime.fromtimestamp(row.next_attempt_at, UTC)
                                 if row.status == PENDING else None)
    return DeliveryOut.model_validate(values)


async def _get_subscription(session: AsyncSession, subscription_id: str,
                            principal: Principal) -> Any:
    row = (await session.execute(_visible_subscriptions(principal).where(
        subscriptions.c.id == subscription_id))).first()
    if row is None:
        raise ApiError(404, "not_found", f"no subscription {subscription_id}")
    return row


def _visible_deliveries(principal: Principal) -> ColumnElement[bool] | None:
    """Which deliveries a key sees: all (unlimited), else those of its own subscriptions and,
    for a key limited to channels (a hotline integration's), the callbacks to its channels'
    work orders (受理, 过程反馈, 办结 ...), so a hotline can read why one of them failed."""
    if not principal.is_limited:
        return None
    own = deliveries.c.subscription_id.in_(
        select(subscriptions.c.id).where(subscriptions.c.owner == principal.key_id))
    if not principal.channels:
        return own
    callbacks = (deliveries.c.target == HOTLINE_FEEDBACK) & deliveries.c.case_id.in_(
        select(cases.c.case_id).where(cases.c.channel.in_(sorted(principal.channels))))
    return or_(own, callbacks)


async def _get_delivery(session: AsyncSession, delivery_id: int, principal: Principal) -> Any:
    query = select(deliveries).where(deliveries.c.id == delivery_id)
    visible = _visible_deliveries(principal)
    if visible is not None:
        query = query.where(visible)
    row = (await session.execute(query)).first()
    if row is None:
        raise ApiError(404, "not_found", f"no delivery {delivery_id}")
    return row


def build_router(book: SubscriptionBook, wake_sender: Callable[[], None]) -> APIRouter:
    router = APIRouter(tags=["notify"])

    @router.post("/v1/subscriptions", status_code=201, response_model=SubscriptionCreated,
                 responses=error_responses(401, 403, 422),
                 summary="Subscribe a webhook to case events")
    async def create_subscription(body: SubscriptionIn, request: Request,
                                  principal: Principal = require(Scope.SUBSCRIPTIONS)
                                  ) -> SubscriptionCreated:
        _check_within_limits(body, principal)
        runtime: Runtime = request.app.state.runtime
        _refuse_denied(runtime, str(body.url))
        sub = Subscription(
            id="sub_" + secrets.token_hex(8), name=body.name, url=str(body.url),
            secret=new_secret(), kinds=sorted(set(body.kinds)),
            departments=sorted({d.value for d in body.departments}),
            tiers=sorted({t.value for t in body.tiers}),
            risks=sorted({r.value for r in body.risks}),
            categories=sorted({c.value for c in body.categories}),
            jurisdictions=sorted(set(body.jurisdictions)),
            channels=sorted({c.value for c in body.channels}),
            authorised_personal_data=body.authorised_personal_data, owner=principal.key_id,
            created_at=datetime.now(UTC))
        async with runtime.sessions() as session, session.begin():
            session.add(sub)
        book.invalidate()
        return SubscriptionCreated.model_validate(sub, from_attributes=True)

    @router.get("/v1/subscriptions", response_model=list[SubscriptionOut],
                responses=error_responses(401, 403))
    async def list_subscriptions(request: Request,
                                 principal: Principal = require(Scope.SUBSCRIPTIONS)
                                 ) -> list[SubscriptionOut]:
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session:
            rows = (await session.execute(_visible_subscriptions(principal)
                                          .order_by(subscriptions.c.created_at))).all()
        return [_subscription_out(r) for r in rows]

    @router.get("/v1/subscriptions/{subscription_id}", response_model=SubscriptionOut,
                responses=error_responses(401, 403, 404))
    async def get_subscription(subscription_id: SubscriptionId, request: Request,
                               principal: Principal = require(Scope.SUBSCRIPTIONS)
                               ) -> SubscriptionOut:
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session:
            return _subscription_out(await _get_subscription(session, subscription_id,
                                                             principal))

    @router.post("/v1/subscriptions/{subscription_id}/rotate-secret",
                 response_model=SecretRotated, responses=error_responses(401, 403, 404),
                 summary="New signing secret; the old one keeps signing for 24 hours")
    async def rotate_secret(subscription_id: SubscriptionId, request: Request,
                            principal: Principal = require(Scope.SUBSCRIPTIONS)
                            ) -> SecretRotated:
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session, session.begin():
            current = await _get_subscription(session, subscription_id, principal)
            return await _rotate_secret(session, subscriptions.c.id, subscription_id,
                                        current.secret)

    @router.delete("/v1/subscriptions/{subscription_id}", status_code=204,
                   responses=error_responses(401, 403, 404),
                   summary="Unsubscribe; its pending deliveries are dropped (dead)")
    async def delete_subscription(subscription_id: SubscriptionId, request: Request,
                                  principal: Principal = require(Scope.SUBSCRIPTIONS)
                                  ) -> Response:
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session, session.begin():
            await _get_subscription(session, subscription_id, principal)
            await session.execute(update(subscriptions).where(
                subscriptions.c.id == subscription_id).values(deleted_at=datetime.now(UTC)))
            await session.execute(update(deliveries).where(
                deliveries.c.subscription_id == subscription_id,
                deliveries.c.status == PENDING).values(status=DEAD,
                                                       last_error="subscription deleted"))
        book.invalidate()
        return Response(status_code=204)

    @router.get("/v1/deliveries", response_model=DeliveryPage,
                responses=error_responses(401, 403, 422),
                summary="The delivery log, newest first")
    async def list_deliveries(
        request: Request,
        subscription_id: Annotated[str | None, Query(max_length=32, pattern=NO_NUL)] = None,
        case_id: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
        event_id: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
        status: DeliveryStatus | None = None,
        target: DeliveryTarget | None = None,
        kind: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        cursor: Annotated[int | None, Query(ge=0, le=MAX_ID,
                                            description="next_cursor of the page before")
                          ] = None,
        principal: Principal = require(Scope.DELIVERIES_READ),
    ) -> DeliveryPage:
        runtime: Runtime = request.app.state.runtime
        query = select(deliveries).order_by(deliveries.c.id.desc()).limit(limit + 1)
        for column, value in ((deliveries.c.subscription_id, subscription_id),
                              (deliveries.c.case_id, case_id), (deliveries.c.event_id, event_id),
                              (deliveries.c.status, status), (deliveries.c.target, target),
                              (deliveries.c.kind, kind)):
            if value is not None:
                query = query.where(column == value)
        if cursor is not None:
            query = query.where(deliveries.c.id < cursor)
        visible = _visible_deliveries(principal)
        if visible is not None:
            query = query.where(visible)
        async with runtime.sessions() as session:
            rows = (await session.execute(query)).all()
        page = rows[:limit]
        return DeliveryPage(items=[_delivery_out(r) for r in page],
                            next_cursor=page[-1].id if len(rows) > limit else None)

    @router.get("/v1/deliveries/{delivery_id}", response_model=DeliveryDetail,
                responses=error_responses(401, 403, 404),
                summary="One delivery with every attempt made")
    async def get_delivery(delivery_id: DeliveryId, request: Request,
                           principal: Principal = require(Scope.DELIVERIES_READ)
                           ) -> DeliveryDetail:
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session:
            row = await _get_delivery(session, delivery_id, principal)
            log = (await session.execute(select(attempts).where(
                attempts.c.delivery_id == delivery_id).order_by(attempts.c.id))).all()
        return DeliveryDetail(**_delivery_out(row).model_dump(), attempt_log=[
            AttemptOut.model_validate(a, from_attributes=True) for a in log])

    @router.post("/v1/deliveries/{delivery_id}/redeliver", status_code=202,
                 response_model=DeliveryOut, responses=error_responses(401, 403, 404, 409),
                 summary="Send a dead or succeeded delivery again, from attempt 1")
    async def redeliver(delivery_id: DeliveryId, request: Request,
                        principal: Principal = require(Scope.SUBSCRIPTIONS)) -> DeliveryOut:
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session, session.begin():
            row = await _get_delivery(session, delivery_id, principal)
            if row.status == PENDING:
                raise ApiError(409, "conflict", f"delivery {delivery_id} is already pending")
            if row.target == WEBHOOK:
                sub = (await session.execute(select(subscriptions.c.deleted_at).where(
                    subscriptions.c.id == row.subscription_id))).first()
                if sub is None or sub.deleted_at is not None:
                    raise ApiError(409, "conflict", f"subscription {row.subscription_id} "
                                   "was deleted")
            await session.execute(update(deliveries).where(
                deliveries.c.id == delivery_id, deliveries.c.status.in_([DEAD, SUCCEEDED]))
                .values(status=PENDING, attempts=0, next_attempt_at=time.time(),
                        last_status_code=None, last_error=None, delivered_at=None))
            row = await _get_delivery(session, delivery_id, principal)
        wake_sender()
        return _delivery_out(row)

    _hotline_endpoint_routes(router)
    return router


# ---------------------------------------------------------------------------------------------
# A hotline integration's callback endpoint: the calling key's own, one per key

NO_ENDPOINT = "this key has registered no callback endpoint: PUT /v1/hotline/endpoint"


def _endpoint_out(row: Any, model: type[HotlineEndpointOut] = HotlineEndpointOut,
                  **extra: Any) -> Any:
    return model.model_validate({**row._mapping, **extra})


async def _get_endpoint(session: AsyncSession, key_id: str) -> Any:
    row = (await session.execute(select(endpoints).where(endpoints.c.key_id == key_id))).first()
    if row is None:
        raise ApiError(404, "not_found", NO_ENDPOINT if key_id else "no such endpoint")
    return row


async def _delete_endpoint(session: AsyncSession, key_id: str) -> None:
    """Delete it; its pending callbacks are dropped (dead), as a subscription's are."""
    await _get_endpoint(session, key_id)
    await session.execute(delete(endpoints).where(endpoints.c.key_id == key_id))
    await session.execute(update(deliveries).where(
        deliveries.c.endpoint_key_id == key_id, deliveries.c.status == PENDING).values(
        status=DEAD, last_error="the integration's callback endpoint was deleted"))


def _hotline_endpoint_routes(router: APIRouter) -> None:
    @router.put(
        "/v1/hotline/endpoint", response_model=HotlineEndpointCreated,
        responses={201: {"model": HotlineEndpointCreated,
                         "description": "Created: the answer holds the secret, shown once"},
                   **error_responses(401, 403, 422)},
        summary="Register (or replace) this key's callback endpoint",
        description="A 12345 integration registers once where the callbacks (签收, 过程反馈, "
        "延期, 退单, 办结, 回访) of the work orders it posts without a `callback_url` go. "
        "201 with a new signing `secret` (shown once) when the key had no endpoint; 200 when "
        "it replaces the URL and kinds of the existing one, whose secret stays. Callbacks "
        "still pending go to the endpoint as it is when they are sent. An order's own "
        "`callback_url` still gets all its callbacks.")
    async def put_endpoint(body: HotlineEndpointIn, request: Request, response: Response,
                           principal: Principal = require(Scope.HOTLINE_ENDPOINT)
                           ) -> HotlineEndpointCreated:
        runtime: Runtime = request.app.state.runtime
        _refuse_denied(runtime, str(body.url))
        wanted = set(body.kinds)
        values = {"url": str(body.url), "kinds": [k.value for k in HotlineStep if k in wanted],
                  "updated_at": datetime.now(UTC)}
        secret = new_secret()
        async with runtime.sessions() as session, session.begin():
            created = await create_endpoint(session, {
                "key_id": principal.key_id, "secret": secret,
                "created_at": values["updated_at"], **values})
            if not created:
                await session.execute(update(endpoints).where(
                    endpoints.c.key_id == principal.key_id).values(**values))
            row = await _get_endpoint(session, principal.key_id)
        response.status_code = 201 if created else 200
        return _endpoint_out(row, HotlineEndpointCreated, secret=secret if created else None)

    @router.get("/v1/hotline/endpoint", response_model=HotlineEndpointOut,
                responses=error_responses(401, 403, 404),
                summary="This key's callback endpoint (never its secret)")
    async def get_endpoint(request: Request,
                           principal: Principal = require(Scope.HOTLINE_ENDPOINT)
                           ) -> HotlineEndpointOut:
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session:
            return _endpoint_out(await _get_endpoint(session, principal.key_id))

    @router.post("/v1/hotline/endpoint/rotate-secret", response_model=SecretRotated,
                 responses=error_responses(401, 403, 404),
                 summary="New signing secret for this key's endpoint; the old one keeps "
                 "signing for 24 hours",
                 description="`id` in the answer is the key id. Until "
                 "`previous_secret_expires_at` every callback carries two signatures, one per "
                 "secret: the receiver may verify with either while it switches.")
    async def rotate_endpoint_secret(request: Request,
                                     principal: Principal = require(Scope.HOTLINE_ENDPOINT)
                                     ) -> SecretRotated:
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session, session.begin():
            current = await _get_endpoint(session, principal.key_id)
            return await _rotate_secret(session, endpoints.c.key_id, principal.key_id,
                                        current.secret)

    @router.delete("/v1/hotline/endpoint", status_code=204,
                   responses=error_responses(401, 403, 404),
                   summary="Delete this key's endpoint; its pending callbacks are dropped "
                   "(dead)")
    async def delete_endpoint(request: Request,
                              principal: Principal = require(Scope.HOTLINE_ENDPOINT)
                              ) -> Response:
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session, session.begin():
            await _delete_endpoint(session, principal.key_id)
        return Response(status_code=204)

    @router.get("/v1/hotline/endpoints", response_model=list[HotlineEndpointOut],
                responses=error_responses(401, 403),
                summary="Every integration's callback endpoint (admin; never a secret)")
    async def list_endpoints(request: Request, principal: Principal = require(Scope.ADMIN)
                             ) -> list[HotlineEndpointOut]:
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session:
            rows = (await session.execute(select(endpoints).order_by(
                endpoints.c.created_at))).all()
        return [_endpoint_out(r) for r in rows]

    @router.delete("/v1/hotline/endpoints/{key_id}", status_code=204,
                   responses=error_responses(401, 403, 404),
                   summary="Delete an integration's endpoint (admin), e.g. of a revoked key")
    async def delete_integration_endpoint(
            key_id: Annotated[str, Path(min_length=1, max_length=32, pattern=NO_NUL)],
            request: Request, principal: Principal = require(Scope.ADMIN)) -> Response:
        runtime: Runtime = request.app.state.runtime
        async with runtime.sessions() as session, session.begin():
            await _delete_endpoint(session, key_id)
        return Response(status_code=204)
