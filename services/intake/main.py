"""Intake wiring: REST and Kafka-native entry points, both through handlers.submit."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.topics import intake_topic
from kit.app import create_app
from kit.consumer import Delivery, Handler, PoisonMessage, Subscription
from kit.runtime import Runtime
from kit.settings import Settings
from services.intake.api import build_router
from services.intake.domain import ADAPTERS, ChannelAdapter
from services.intake.handlers import Outcome, submit
from services.intake.store import IntakeBase, kit_tables


def _kafka_handler(runtime: Runtime, adapter: ChannelAdapter) -> Handler:
    async def handle(session: AsyncSession, delivery: Delivery) -> None:
        result = await submit(session, adapter, delivery.message, runtime.settings.hash_secret)
        if result.outcome is Outcome.CONFLICT:
            external_id = adapter.external_id(delivery.message)
            raise PoisonMessage(f"{adapter.external_id_field} {external_id} was already "
                                f"received with different content (case {result.case_id})")
    return handle


def create(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings(service="intake")
    runtime = Runtime(settings, IntakeBase.metadata, kit_tables)
    runtime.consume("intake", [
        Subscription(intake_topic(a.channel.value), a.native, _kafka_handler(runtime, a))
        for a in ADAPTERS.values()])
    return create_app(
        runtime, title="fengqiao intake",
        description="Reports from every channel, in their native formats, become cases.",
        routers=[build_router()])
