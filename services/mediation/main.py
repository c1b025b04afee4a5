"""Mediation wiring: case events in, the case API out."""

from __future__ import annotations

from fastapi import FastAPI

from contracts.events import CaseReportedEvent, CaseRoutedEvent
from contracts.topics import CASE_REPORTED, CASE_ROUTED
from kit.app import create_app
from kit.consumer import Subscription
from kit.runtime import Runtime
from kit.settings import Settings
from services.mediation.api import build_router
from services.mediation.handlers import on_reported, on_routed
from services.mediation.store import kit_tables, metadata


def create(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings(service="mediation")
    runtime = Runtime(settings, metadata, kit_tables)
    runtime.consume("mediation", [
        Subscription(CASE_REPORTED, CaseReportedEvent, on_reported),
        Subscription(CASE_ROUTED, CaseRoutedEvent, on_routed),
    ])
    return create_app(
        runtime, title="fengqiao mediation",
        description="Cases from acceptance to archive: status, history, time limits.",
        routers=[build_router()])
