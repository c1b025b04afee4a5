"""Standard Webhooks signing, secret rotation and the retry schedule."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from datetime import UTC, datetime, timedelta

import pytest

from services.notify.domain import (
    SECRET_OVERLAP,
    is_valid_secret,
    new_secret,
    next_attempt_delay,
    retry_schedule,
    sign,
    signing_secrets,
    webhook_headers,
)


def receiver_accepts(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The Standard Webhooks verification, written from the spec, knowing only the secret."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(version == "v1" and hmac.compare_digest(sig, expected)
               for version, _, sig in (s.partition(",")
                                       for s in headers["webhook-signature"].split(" ")))


def test_signature_matches_the_standard_webhooks_test_vector() -> None:
    assert sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330, b'{"test": 2432232314}') == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_receiver_with_only_the_secret_accepts_the_headers_and_nothing_altered() -> None:
    secret = new_secret()
    body = b'{"case_id":"FQ1"}'
    headers = webhook_headers(secret, "msg_1", 1700000000, body)
    assert receiver_accepts(secret, headers, body)
    assert not receiver_accepts(secret, headers, body.replace(b"FQ1", b"FQ2"))
    assert not receiver_accepts(new_secret(), headers, body)
    assert not receiver_accepts(secret, {**headers, "webhook-timestamp": "1700000001"}, body)


def test_after_rotation_both_secrets_sign_until_the_overlap_ends() -> None:
    old, new = new_secret(), new_secret()
    now = datetime(2026, 11, 23, 8, tzinfo=UTC)
    expires = now + SECRET_OVERLAP
    body = b"{}"
    during = webhook_headers(signing_secrets(new, old, expires, now), "msg_2", 1, body)
    assert len(during["webhook-signature"].split(" ")) == 2
    assert receiver_accepts(old, during, body) and receiver_accepts(new, during, body)
    after = webhook_headers(signing_secrets(new, old, expires, expires + timedelta(seconds=1)),
                            "msg_2", 1, body)
    assert receiver_accepts(new, after, body) and not receiver_accepts(old, after, body)
    assert SECRET_OVERLAP == timedelta(hours=24)


@pytest.mark.parametrize("secret,valid", [
    (new_secret(), True), ("whsec_" + base64.b64encode(b"k" * 16).decode(), True),
    ("whsec_" + base64.b64encode(b"short").decode(), False), ("whsec_not base64!", False),
    (base64.b64encode(b"k" * 24).decode(), False)])
def test_only_whsec_secrets_of_a_sensible_length_are_valid(secret: str, valid: bool) -> None:
    assert is_valid_secret(secret) is valid


def test_retries_spread_over_hours_with_jitter_and_never_exceed_the_cap() -> None:
    rng = random.Random(1)
    delays = [next_attempt_delay(n, 2.0, 3600.0, rng) for n in range(1, 12)]
    assert all(low <= d <= high for d, (low, high) in zip(delays, retry_schedule(12, 2.0, 3600.0),
                                                          strict=True))
    # The defaults (8 attempts, base 2 s) retry for minutes; a cap of an hour bounds each wait.
    assert sum(high for _, high in retry_schedule(8, 2.0, 3600.0)) == 254.0
    assert retry_schedule(16, 2.0, 3600.0)[-1] == (1800.0, 3600.0)
    assert len({round(next_attempt_delay(3, 2.0, 3600.0, rng), 6) for _ in range(20)}) > 1
