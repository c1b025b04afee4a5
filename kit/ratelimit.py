"""Rate limits per API key: a token bucket per key id (`burst` requests at once, refilled at
`rate` per second), and the FastAPI dependency that answers 429 with Retry-After.

The buckets live in the process: with N replicas behind a load balancer a key gets up to N
times the rate. Admin keys (operators' own tools, the embedded default's dev key) are not
limited; the limits are for the systems that integrate with the platform."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request

from kit.auth import Principal, Scope, require
from kit.errors import ApiError

# Buckets of keys idle long enough to be full again are dropped past this many keys.
MAX_TRACKED_KEYS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets by key. `rate` <= 0 turns limiting off."""

    def __init__(self, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: str, cost: float = 1.0) -> float:
        """Take `cost` tokens from `key`'s bucket: 0.0 when admitted, otherwise the seconds
        until that many tokens will be there (nothing is taken then)."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._forget_idle(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        else:
            bucket.tokens = min(float(self.burst),
                                bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        if len(self._buckets) < MAX_TRACKED_KEYS:
            return
        refill = self.burst / self.rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < refill}


def retry_after(request: Request, principal: Principal) -> int:
    """Take a request of `principal` from the app's limiter (app.state.rate_limiter): 0 when
    admitted, otherwise the whole seconds to wait before trying again."""
    return seconds_to_wait(request.app.state.rate_limiter, principal)


def seconds_to_wait(limiter: RateLimiter, principal: Principal) -> int:
    """Take a request of `principal` from `limiter`: 0 when admitted, otherwise the whole
    seconds to wait before trying again (nothing is taken then). Admin keys are not limited."""
    if Scope.ADMIN in principal.scopes:
        return 0
    wait = limiter.take(principal.key_id)
    return max(1, math.ceil(wait)) if wait > 0 else 0


def admit(request: Request, principal: Principal) -> None:
    """Admit a request of `principal`, or raise 429 with Retry-After."""
    wait = retry_after(request, principal)
    if wait:
        limiter: RateLimiter = request.app.state.rate_limiter
        raise ApiError(429, "rate_limited", f"This key sends more than {limiter.rate:g} "
                       f"requests per second (bursts of {limiter.burst}); retry in {wait} s.",
                       headers={"Retry-After": str(wait)})


def require_within_rate(scope: Scope) -> Any:
    """Like kit.auth.require(scope), and the key stays within the rate limit."""
    authorised = require(scope)

    # A default, not Annotated[...]: annotations are strings here, and FastAPI could not
    # resolve a name local to this function from one.
    async def dependency(request: Request, principal: Principal = authorised) -> Principal:
        admit(request, principal)
        return principal

    return Depends(dependency)
