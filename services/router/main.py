"""Router wiring: reported, escalated and returned cases and dispatchers' decisions in,
decisions out."""

from __future__ import annotations

from fastapi import FastAPI

from contracts.events import (
    CaseLifecycleEvent,
    CasePersonalDataErasedEvent,
    CaseReportedEvent,
    CaseRoutedEvent,
)
from contracts.topics import (
    CASE_LIFECYCLE,
    CASE_PERSONAL_DATA_ERASED,
    CASE_REPORTED,
    CASE_ROUTED,
    CORRECTION_KIND_HEADER,
)
from kit.app import create_app
from kit.consumer import Subscription
from kit.erasure import count_erasures_from_zero
from kit.runtime import Runtime
from kit.settings import Settings
from services.router.api import build_router
from services.router.erasure import on_personal_data_erased
from services.router.handlers import (
    BY_HAND_KINDS,
    MAY_BE_BY_HAND,
    MAY_ROUTE_AGAIN,
    RouterHandlers,
)
from services.router.rulebook import Rulebook
from services.router.store import kit_tables, metadata


def create(settings: Settings | None = None) -> FastAPI:
    count_erasures_from_zero("router")
    settings = settings or Settings(service="router")
    rulebook = Rulebook(settings.routing_rules_path, settings.jurisdictions_path)
    runtime = Runtime(settings, metadata, kit_tables)
    handlers = RouterHandlers(rulebook)
    runtime.consume("router", [
        Subscription(CASE_REPORTED, CaseReportedEvent, handle_batch=handlers.on_reported),
        Subscription(CASE_LIFECYCLE, CaseLifecycleEvent, handlers.on_lifecycle,
                     relevant=MAY_ROUTE_AGAIN),
        # Its own routed events come back here too: the header says which are not by hand,
        # so they are skipped without being parsed.
        Subscription(CASE_ROUTED, CaseRoutedEvent, handlers.on_assigned,
                     relevant=MAY_BE_BY_HAND,
                     relevant_header=(CORRECTION_KIND_HEADER, BY_HAND_KINDS)),
    ])
    runtime.consume("router-personal-data", [
        Subscription(CASE_PERSONAL_DATA_ERASED, CasePersonalDataErasedEvent,
                     on_personal_data_erased)])
    return create_app(
        runtime, title="fengqiao router",
        description="Category, risk, tier, lead and cooperating departments for every case, "
        "with the rules that fired and why. The policy is a data file (GET /v1/routing/rules).",
        routers=[build_router(rulebook)])
