"""Sliding-window counters, in memory and per process: "at most N in any T seconds" per key.

Used for failed logins (per client id and per address) and for signing tree heads on demand.
Each hub process counts on its own, so with ``--processes N`` a client gets at most N times the
limit; that bound is what matters against guessing and load, and needs no shared state.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from exchange.errors import HubError

__all__ = ["SlidingWindow", "too_many"]


class SlidingWindow:
    """At most ``limit`` hits per key in any ``window`` seconds; ``max_keys`` bounds memory
    (the oldest keys go first, so spraying keys cannot grow the table without end)."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        max_keys: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self._max_keys = max_keys
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float] | None:
        hits = self._hits.get(key)
        if hits is None:
            return None
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if not hits:
            del self._hits[key]
            return None
        return hits

    def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` may hit again, or None when it may now."""
        now = self._clock()
        hits = self._recent(key, now)
        if hits is None or len(hits) < self.limit:
            return None
        return hits[-self.limit] + self.window - now

    def hit(self, key: str) -> float:
        """Count one hit now; returns its ticket (for :meth:`forgive`)."""
        now = self._clock()
        hits = self._recent(key, now)
        if hits is None:
            if len(self._hits) >= self._max_keys:
                self._prune(now)
            hits = self._hits[key] = deque()
        hits.append(now)
        return now

    def forgive(self, key: str, ticket: float) -> None:
        """Take back one hit (a login that turned out to be right)."""
        hits = self._hits.get(key)
        if hits is not None and ticket in hits:
            hits.remove(ticket)

    def _prune(self, now: float) -> None:
        for key in list(self._hits):
            self._recent(key, now)
        excess = len(self._hits) - self._max_keys + 1
        for key in list(self._hits)[: max(excess, 0)]:
            del self._hits[key]


def too_many(code: str, message: str, wait: float) -> HubError:
    """The 429 refusal, with ``Retry-After`` in whole seconds (at least 1)."""
    seconds = max(1, math.ceil(wait))
    return HubError(
        code,
        f"{message}; try again in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )
