"""Intake wiring: REST, batch and Kafka-native entry points, all through handlers.submit_many;
Open311 routes; and the lifecycle consumer that keeps Open311 statuses current."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.middleware import Middleware

from contracts.events import CaseLifecycleEvent, CasePersonalDataErasedEvent
from contracts.topics import CASE_LIFECYCLE, CASE_PERSONAL_DATA_ERASED, intake_topic
from kit.app import create_app
from kit.consumer import Delivery, Handler, PoisonMessage, Subscription
from kit.erasure import count_erasures_from_zero
from kit.runtime import Runtime
from kit.settings import Settings
from kit.webhook_docs import add_webhooks
from services.intake.api import build_router
from services.intake.committer import GroupCommitter
from services.intake.domain import ADAPTERS, ChannelAdapter, Outcome
from services.intake.erasure import on_personal_data_erased
from services.intake.handlers import submit
from services.intake.open311.api import Open311Failure, open311_error
from services.intake.open311.api import router as open311_router
from services.intake.open311.handlers import MAY_BE_OPEN311_STEP, follow_lifecycle
from services.intake.single_post import SinglePostFastPath
from services.intake.store import IntakeBase, kit_tables


def _kafka_handler(runtime: Runtime, adapter: ChannelAdapter[Any]) -> Handler:
    async def handle(session: AsyncSession, delivery: Delivery) -> None:
        result = await submit(session, adapter, delivery.message, runtime.settings.hash_secret)
        if result.outcome is Outcome.CONFLICT:
            external_id = adapter.external_id(delivery.message)
            raise PoisonMessage(f"{adapter.external_id_field} {external_id} was already "
                                f"received with different content (case {result.case_id})")
    return handle


def create(settings: Settings | None = None) -> FastAPI:
    count_erasures_from_zero("intake")
    settings = settings or Settings(service="intake")
    runtime = Runtime(settings, IntakeBase.metadata, kit_tables)
    # Native payloads published to Kafka: the loop dead-letters what fails validation.
    runtime.consume("intake", [
        Subscription(intake_topic(a.channel.value), a.native, _kafka_handler(runtime, a))
        for a in ADAPTERS.values()])
    runtime.consume("intake-open311-status", [
        Subscription(CASE_LIFECYCLE, CaseLifecycleEvent, follow_lifecycle,
                     relevant=MAY_BE_OPEN311_STEP)])
    runtime.consume("intake-personal-data", [
        Subscription(CASE_PERSONAL_DATA_ERASED, CasePersonalDataErasedEvent,
                     on_personal_data_erased)])
    app = create_app(
        runtime, title="fengqiao intake",
        description="Reports from every channel, in their native formats, become cases: "
        "REST one by one or in batches, Kafka-native topics, and Open311 GeoReport v2.",
        routers=[build_router(), open311_router],
        # The single report POST served without FastAPI's machinery when nothing is unusual
        # about the request; anything else goes through the stack (services/intake/single_post.py).
        inner_middleware=[Middleware(SinglePostFastPath, max_bytes=settings.max_body_bytes)])
    app.add_exception_handler(Open311Failure, open311_error)
    # The callbacks a hotline gets for its orders, beside the routes it calls.
    add_webhooks(app, ["hotline"])
    app.state.committer = GroupCommitter(runtime)
    return app
