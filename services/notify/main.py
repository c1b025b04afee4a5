"""Notify wiring: routed events become deliveries; the sender posts them."""

from __future__ import annotations

from fastapi import FastAPI

from contracts.events import CaseRoutedEvent
from contracts.topics import CASE_ROUTED
from kit.app import create_app
from kit.consumer import Subscription
from kit.runtime import Runtime
from kit.settings import Settings
from services.notify.api import build_router
from services.notify.handlers import on_routed
from services.notify.sender import DeliverySender
from services.notify.store import kit_tables, metadata


def create(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings(service="notify")
    runtime = Runtime(settings, metadata, kit_tables)
    sender = DeliverySender(settings, runtime.engine, runtime.sessions)
    runtime.consume("notify", [Subscription(CASE_ROUTED, CaseRoutedEvent, on_routed)],
                    after_commit=sender.wake)
    runtime.job("delivery-sender", sender.run, stop=sender.stop)
    return create_app(
        runtime, title="fengqiao notify",
        description="Webhooks to departments and platforms, signed (Standard Webhooks), "
        "retried with backoff, every attempt logged.",
        routers=[build_router()])
