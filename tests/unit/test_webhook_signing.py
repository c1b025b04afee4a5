from __future__ import annotations

import random

from services.notify.domain import (
    SubscriptionFilter,
    new_secret,
    next_attempt_delay,
    sign,
    verify,
)


def test_receiver_with_only_the_secret_verifies_the_signature() -> None:
    secret = new_secret()
    body = b'{"case_id":"FQ1"}'
    header = sign(secret, "msg_1", 1700000000, body)
    assert verify(secret, "msg_1", 1700000000, body, header)
    assert not verify(secret, "msg_1", 1700000000, body + b" ", header)
    assert not verify(new_secret(), "msg_1", 1700000000, body, header)
    assert not verify(secret, "msg_1", 1700000001, body, header)


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    delays = [next_attempt_delay(n, 2.0, 3600.0, rng) for n in range(1, 15)]
    assert 1.0 <= delays[0] <= 2.0
    assert 8.0 <= delays[3] <= 16.0
    assert all(d <= 3600.0 for d in delays)
    assert delays[-1] >= 1800.0


def test_subscription_filter_matches_kind_and_department() -> None:
    f = SubscriptionFilter(frozenset({"routed"}), frozenset({"judicial_office"}))
    assert f.matches("routed", {"judicial_office"})
    assert not f.matches("routed", {"health"})
    assert not f.matches("lifecycle", {"judicial_office"})
    assert SubscriptionFilter(frozenset(), frozenset()).matches("anything", {"health"})
