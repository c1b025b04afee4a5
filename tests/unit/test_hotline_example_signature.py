"""The example client's signature check (examples/hotline_client.py) against what notify
signs: a vendor copying it verifies the centre's callbacks, during a rotation too, and
refuses a changed body, another secret and a replayed (stale) callback."""

from __future__ import annotations

import time

from examples.hotline_client import SIGNATURE_TOLERANCE_SECONDS, signature_is_valid
from services.notify.domain import new_secret, signature_header

BODY = b'{"order_no": "GD20261207-0042", "step": "signed_for"}'


def headers(secrets: list[str], at: int, body: bytes = BODY) -> dict[str, str]:
    return {"webhook-id": "msg_1", "webhook-timestamp": str(at),
            "webhook-signature": signature_header(secrets, "msg_1", at, body)}


def test_a_callback_notify_signed_is_valid_with_its_secret_only() -> None:
    secret, other = new_secret(), new_secret()
    now = int(time.time())
    assert signature_is_valid(secret, headers([secret], now), BODY)
    assert not signature_is_valid(other, headers([secret], now), BODY)
    assert not signature_is_valid(secret, headers([secret], now), BODY + b" ")


def test_during_a_rotation_either_secret_verifies() -> None:
    new, old = new_secret(), new_secret()
    signed = headers([new, old], int(time.time()))
    assert signature_is_valid(new, signed, BODY) and signature_is_valid(old, signed, BODY)


def test_a_stale_or_malformed_callback_is_refused() -> None:
    secret = new_secret()
    stale = int(time.time()) - SIGNATURE_TOLERANCE_SECONDS - 5
    assert not signature_is_valid(secret, headers([secret], stale), BODY)
    assert not signature_is_valid(secret, {"webhook-id": "msg_1"}, BODY)
    assert not signature_is_valid(secret, {**headers([secret], int(time.time())),
                                           "webhook-timestamp": "soon"}, BODY)


def test_the_examples_default_secret_is_make_runs() -> None:
    from examples.hotline_client import MAKE_RUN_SECRET
    from kit.settings import DEV_HOTLINE_CALLBACK_SECRET
    assert MAKE_RUN_SECRET == DEV_HOTLINE_CALLBACK_SECRET
