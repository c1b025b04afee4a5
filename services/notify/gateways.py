"""The outside services notify talks to besides webhook receivers: SMS gateways (an HTTP
provider, or a log file standing in for one) and intake's contact directory, the one place
the citizen's phone number is kept in clear. Phone numbers are passed through, never logged
and never put into an error message."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from contracts.api_notify import CaseContact
from kit.privacy import mask_phone
from services.notify.domain import DeliveryFailed, SmsMessage

USER_AGENT = "fengqiao-notify/1"


def failure(exc: httpx.HTTPError, what: str) -> DeliveryFailed:
    # The exception's type and the URL we called say enough; no body, no number.
    return DeliveryFailed(f"{what}: {type(exc).__name__}")


class _Http:
    """A lazily created client, so it belongs to the event loop that uses it."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout),
                                             follow_redirects=False,
                                             headers={"user-agent": USER_AGENT})
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class HttpSmsGateway(_Http):
    """POSTs {phone, text, template, reference} as JSON to an SMS provider's endpoint.
    `template` (received or closed) lets a provider that works with template codes map it;
    `reference` is stable across retries, so the provider can drop duplicates."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 5.0) -> None:
        super().__init__(timeout)
        self.url = url
        self.token = token

    async def send(self, message: SmsMessage) -> None:
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = await self.client.post(self.url, headers=headers, json={
                "phone": message.phone, "text": message.text, "template": message.template,
                "reference": message.reference})
        except httpx.HTTPError as exc:
            raise failure(exc, "SMS gateway") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"SMS gateway answered HTTP {response.status_code}",
                                 response.status_code)


class LogFileSmsGateway:
    """Stands in for an SMS provider in the embedded default: appends each message to a file,
    with the phone number masked (the file is read by people, so it is treated like a log)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def send(self, message: SmsMessage) -> None:
        line = "\t".join((datetime.now(UTC).isoformat(timespec="seconds"),
                          mask_phone(message.phone), message.reference, message.template,
                          message.text.replace("\n", " "))) + "\n"
        await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line)

    async def aclose(self) -> None:
        return None


class HttpContactDirectory(_Http):
    """Intake's contact directory: GET {intake}/v1/intake/cases/{case_id}/contact with a key
    holding scope personal_data:read. 200 → the phone (or null); 404 → no contact for that
    case; anything else → the attempt fails and is retried."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float = 5.0) -> None:
        super().__init__(timeout)
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key

    async def contact_phone(self, case_id: str) -> str | None:
        headers = {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        url = f"{self.base_url}/v1/intake/cases/{quote(case_id, safe='')}/contact"
        try:
            response = await self.client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise failure(exc, "contact directory") from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise DeliveryFailed(f"contact directory answered HTTP {response.status_code}")
        try:
            return CaseContact.model_validate_json(response.content).phone
        except ValidationError:
            raise DeliveryFailed("contact directory answered with an unexpected body") from None
