"""Liveness, not only life: each long-running activity of a service (a consumer loop, the
outbox relay, a leader job) beats when it makes progress, idle or busy, and `/healthz` fails
when one has not beaten for longer than a bound. A process whose event loop still answers
HTTP while one of its loops is stuck (a database lock held, a client call that never
returns) is then restarted by whatever runs it: `make run`'s supervisor, an orchestrator.

An activity is found through a context variable, set by the runtime on the task that runs
it (and inherited by the tasks that one starts, such as a leader's job), so the code that
beats needs to know nothing but `beat()`."""

from __future__ import annotations

import time
from contextvars import ContextVar

from kit.metrics import LAST_PROGRESS

_ACTIVITY: ContextVar[tuple[Heartbeats, str] | None] = ContextVar("fq_activity", default=None)


class Heartbeats:
    """The last progress of each activity of one service process."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._last: dict[str, float] = {}
        self._expected: set[str] = set()

    def expect(self, activity: str) -> None:
        """`activity` must beat: from now on, a silence longer than the bound is a fault."""
        self._expected.add(activity)
        self._last.setdefault(activity, time.monotonic())

    def bind(self, activity: str) -> None:
        """Make `activity` the one `beat()` refers to in the current task (and its children)."""
        _ACTIVITY.set((self, activity))

    def beat(self, activity: str) -> None:
        self._last[activity] = time.monotonic()
        LAST_PROGRESS.labels(service=self.service, activity=activity).set(time.time())

    def excuse(self, activities: list[str]) -> None:
        """Their silence is not theirs to answer for (the broker is down): restarting the
        process would not help, so /healthz should not fail for it. The exported time of
        the last progress stays true."""
        now = time.monotonic()
        for activity in activities:
            if activity in self._last:
                self._last[activity] = now

    def ages(self) -> dict[str, float]:
        """Seconds since each expected activity last made progress."""
        now = time.monotonic()
        return {name: round(now - self._last[name], 1) for name in sorted(self._expected)}

    def stuck(self, bound: float) -> dict[str, float]:
        return {name: age for name, age in self.ages().items() if age > bound}


def beat() -> None:
    """The activity running this task made progress (nothing when no activity is bound)."""
    bound = _ACTIVITY.get()
    if bound is not None:
        heartbeats, activity = bound
        heartbeats.beat(activity)
