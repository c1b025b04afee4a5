"""Pure parts of notify: who should hear about an event, how a webhook is signed, and when
to try a failed delivery again."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import secrets
from dataclasses import dataclass

# Webhooks follow the Standard Webhooks scheme (standardwebhooks.com): headers webhook-id,
# webhook-timestamp and webhook-signature = "v1,<base64 HMAC-SHA256 of id.timestamp.body>",
# keyed with the base64 part of a "whsec_..." secret, so receivers can use its libraries.
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify(secret: str, message_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """What a receiver does: any v1 signature in the header must match."""
    expected = sign(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, sig) for sig in header.split())


def webhook_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {"content-type": "application/json", "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, message_id, timestamp, body),
            "user-agent": "fengqiao-notify/1"}


def next_attempt_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None
                       ) -> float:
    """Exponential backoff with full jitter: attempt 1 waits up to `base`, then doubling."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class SubscriptionFilter:
    kinds: frozenset[str]
    departments: frozenset[str]

    def matches(self, kind: str, departments: set[str]) -> bool:
        """Kinds must match; an empty department list means every department."""
        if self.kinds and kind not in self.kinds:
            return False
        return not self.departments or bool(self.departments & departments)
