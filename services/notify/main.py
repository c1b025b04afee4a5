"""Notify wiring: case events become deliveries (webhooks, hotline feedback, SMS); the sender
sends them; the API manages subscriptions and shows the delivery log."""

from __future__ import annotations

from fastapi import FastAPI

from contracts.events import (
    CaseLifecycleEvent,
    CasePersonalDataErasedEvent,
    CaseReportedEvent,
    CaseRoutedEvent,
    CaseSupervisionEvent,
)
from contracts.topics import (
    CASE_LIFECYCLE,
    CASE_PERSONAL_DATA_ERASED,
    CASE_REPORTED,
    CASE_ROUTED,
    CASE_SUPERVISION,
)
from kit.app import create_app
from kit.consumer import Subscription
from kit.erasure import count_erasures_from_zero
from kit.runtime import Runtime
from kit.settings import Settings
from kit.webhook_docs import add_webhooks
from services.notify.api import build_router
from services.notify.domain import (
    SMS_CLOSED,
    SMS_RECEIVED,
    SmsGateway,
    check_sms_template,
    is_valid_secret,
)
from services.notify.erasure import on_personal_data_erased
from services.notify.gateways import HttpContactDirectory, HttpSmsGateway, LogFileSmsGateway
from services.notify.handlers import NotifyHandlers, SubscriptionBook
from services.notify.sender import DeliverySender
from services.notify.store import kit_tables, metadata


def check_settings(settings: Settings) -> None:
    """Fail at start, not at the first closure, on a bad secret or template."""
    settings.check_secrets()
    if not is_valid_secret(settings.hotline_callback_secret):
        raise ValueError("FQ_HOTLINE_CALLBACK_SECRET must be whsec_ followed by base64 of "
                         "16 to 64 bytes")
    for origin, secrets in settings.hotline_callback_secrets.items():
        if not all(is_valid_secret(s) for s in secrets):
            raise ValueError(f"FQ_HOTLINE_CALLBACK_SECRETS: a secret for {origin} is not "
                             "whsec_ followed by base64 of 16 to 64 bytes")
    check_sms_template(SMS_RECEIVED, settings.sms_template_received)
    check_sms_template(SMS_CLOSED, settings.sms_template_closed)


def sms_gateway(settings: Settings) -> SmsGateway:
    """The HTTP provider when configured; otherwise the log file of the embedded default."""
    if settings.sms_gateway_url:
        return HttpSmsGateway(settings.sms_gateway_url, settings.sms_gateway_token,
                              timeout=settings.delivery_timeout_seconds)
    return LogFileSmsGateway(settings.var_dir / "sms.log")


def create(settings: Settings | None = None) -> FastAPI:
    count_erasures_from_zero("notify")
    settings = settings or Settings(service="notify")
    check_settings(settings)
    runtime = Runtime(settings, metadata, kit_tables)
    directory = HttpContactDirectory(
        settings.intake_url, settings.contact_directory_api_key or settings.dev_api_key,
        timeout=settings.delivery_timeout_seconds)
    sender = DeliverySender(settings, runtime.engine, runtime.sessions,
                            outbox=kit_tables.outbox, sms=sms_gateway(settings),
                            directory=directory, on_dead=runtime.relay.wake)
    book = SubscriptionBook()
    handlers = NotifyHandlers(settings, book)
    runtime.consume("notify", [
        Subscription(topic, model, handle_batch=handlers.handle_batch)
        for topic, model in ((CASE_REPORTED, CaseReportedEvent), (CASE_ROUTED, CaseRoutedEvent),
                             (CASE_LIFECYCLE, CaseLifecycleEvent),
                             (CASE_SUPERVISION, CaseSupervisionEvent))
    ], after_commit=sender.wake)
    runtime.consume("notify-personal-data", [
        Subscription(CASE_PERSONAL_DATA_ERASED, CasePersonalDataErasedEvent,
                     on_personal_data_erased)])
    runtime.job("delivery-sender", sender.run, stop=sender.stop, beats=True)
    app = create_app(
        runtime, title="fengqiao notify",
        description="Webhooks to departments and platforms (Standard Webhooks signatures, "
        "retried with backoff, every attempt logged), result feedback to the 12345 hotline "
        "(办结反馈), and SMS to the reporting citizen.",
        routers=[build_router(book, sender.wake)])
    add_webhooks(app)  # what it sends, for receivers to generate their handlers from
    return app
