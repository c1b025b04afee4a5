"""Mediation wiring: case events in, the case API out, and the supervision scheduler."""

from __future__ import annotations

from fastapi import FastAPI

from contracts.events import CaseReportedEvent, CaseRoutedEvent
from contracts.topics import CASE_REPORTED, CASE_ROUTED
from kit.app import create_app
from kit.consumer import Subscription
from kit.erasure import count_erasures_from_zero
from kit.runtime import Runtime
from kit.settings import Settings
from services.mediation.api import build_router
from services.mediation.handlers import CaseEvents
from services.mediation.hotline_api import build_hotline_router
from services.mediation.matters_api import build_matters_router
from services.mediation.personal_data import build_personal_data_router
from services.mediation.retention import PersonalDataRetention
from services.mediation.scheduled import Supervisor
from services.mediation.store import kit_tables, metadata


def create(settings: Settings | None = None) -> FastAPI:
    count_erasures_from_zero("mediation")
    settings = settings or Settings(service="mediation")
    runtime = Runtime(settings, metadata, kit_tables)
    events = CaseEvents(settings)
    runtime.consume("mediation", [
        Subscription(CASE_REPORTED, CaseReportedEvent, handle_batch=events.handle_batch),
        Subscription(CASE_ROUTED, CaseRoutedEvent, handle_batch=events.handle_batch),
    ])
    supervisor = Supervisor(runtime)
    runtime.job("supervision", supervisor.run, supervisor.stop, beats=True)
    retention = PersonalDataRetention(runtime)
    runtime.job("personal-data-retention", retention.run, retention.stop)
    return create_app(
        runtime, title="fengqiao mediation",
        description="Cases from acceptance to archive: lifecycle transitions with history, "
        "time limits and supervision (督办), the case API for staff and other platforms, "
        "and the figures the centres report.",
        routers=[build_router(), build_hotline_router(), build_matters_router(),
                 build_personal_data_router()])
