"""The token bucket per API key: bursts, refill at the rate, separate keys, and the wait."""

from __future__ import annotations

import pytest

from kit.ratelimit import MAX_TRACKED_KEYS, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_burst_is_admitted_then_the_next_request_waits_one_token(clock: Clock) -> None:
    limiter = RateLimiter(rate=10, burst=5, clock=clock)
    assert [limiter.take("k") for _ in range(5)] == [0.0] * 5
    assert limiter.take("k") == pytest.approx(0.1)


def test_tokens_come_back_at_the_rate_and_never_above_the_burst(clock: Clock) -> None:
    limiter = RateLimiter(rate=10, burst=5, clock=clock)
    for _ in range(5):
        limiter.take("k")
    clock.now += 0.25  # 2.5 tokens
    assert limiter.take("k") == 0.0
    assert limiter.take("k") == 0.0
    assert limiter.take("k") == pytest.approx(0.05)
    clock.now += 3600
    assert [limiter.take("k") for _ in range(6)][-1] > 0, "refilled only up to the burst"


def test_a_refused_request_takes_nothing(clock: Clock) -> None:
    limiter = RateLimiter(rate=1, burst=1, clock=clock)
    assert limiter.take("k") == 0.0
    assert limiter.take("k") == pytest.approx(1.0)
    assert limiter.take("k") == pytest.approx(1.0), "waiting does not dig the hole deeper"
    clock.now += 1.0
    assert limiter.take("k") == 0.0


def test_keys_have_buckets_of_their_own(clock: Clock) -> None:
    limiter = RateLimiter(rate=1, burst=2, clock=clock)
    assert limiter.take("hotline") == limiter.take("hotline") == 0.0
    assert limiter.take("hotline") > 0
    assert limiter.take("grid") == 0.0


def test_a_rate_of_zero_turns_limiting_off(clock: Clock) -> None:
    limiter = RateLimiter(rate=0, burst=1, clock=clock)
    assert not limiter.enabled
    assert all(limiter.take("k") == 0.0 for _ in range(1000))


def test_idle_keys_are_forgotten_when_many_keys_are_tracked(clock: Clock) -> None:
    limiter = RateLimiter(rate=10, burst=10, clock=clock)
    for i in range(MAX_TRACKED_KEYS):
        limiter.take(f"k{i}")
    clock.now += 2.0  # everyone is full again
    limiter.take("recent")
    limiter.take("newcomer")
    assert len(limiter._buckets) == 2
