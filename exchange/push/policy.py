"""What an answer means, when to try again, and when to stop trying an endpoint for a while.

* 2xx: delivered and acknowledged.
* 408, 429, 5xx (and any status outside 100-599), timeouts and connection errors: tried again
  on the schedule (``push_retry_schedule``, its last interval repeating) until
  ``push_ttl_seconds`` after the push began; a ``Retry-After`` on 429 or 503 is honoured.
* 3xx (redirects are not followed) and every other 4xx: failed at once.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

__all__ = ["Breaker", "RetryPolicy", "parse_schedule", "retry_after", "verdict"]

_RETRIED_4XX = {408, 429}
_RETRY_AFTER_ON = {429, 503}


def verdict(status: int) -> str:
    """``acknowledged``, ``retry`` or ``failed`` for an HTTP status."""
    if 200 <= status <= 299:
        return "acknowledged"
    if status in _RETRIED_4XX or not 300 <= status <= 499:
        return "retry"
    return "failed"


def retry_after(status: int, value: str | None, now: datetime) -> float | None:
    """Seconds a 429 or 503 asks the hub to wait (delta-seconds or an HTTP date), or None
    when there is no usable ``Retry-After``."""
    if status not in _RETRY_AFTER_ON or not value:
        return None
    value = value.strip()
    if value.isdigit() and len(value) <= 10:
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def parse_schedule(text: str) -> tuple[float, ...]:
    """``"30,120,1200,3600"`` as seconds (the setting is checked when it is read)."""
    return tuple(float(part) for part in text.split(","))


@dataclass(frozen=True)
class RetryPolicy:
    """When the next attempt of a push is, or None when it is past its time to live."""

    schedule: tuple[float, ...]
    ttl_seconds: float

    def next_attempt(
        self, attempt: int, window_start: datetime, now: datetime, asked: float | None = None
    ) -> datetime | None:
        """After failed attempt number ``attempt`` (1-based); ``asked`` is a Retry-After."""
        step = self.schedule[min(attempt, len(self.schedule)) - 1]
        if asked is not None:
            step = max(1.0, asked)
        due = now + timedelta(seconds=step)
        if due > window_start + timedelta(seconds=self.ttl_seconds):
            return None
        return due


@dataclass
class Breaker:
    """A circuit breaker per endpoint (in this process): after ``threshold`` failures in a
    row the endpoint gets no request for ``cooldown`` seconds, then one probe; its success
    closes the circuit, its failure opens it again."""

    threshold: int
    cooldown: float
    failures: int = 0
    opened_at: float | None = None
    probing: bool = field(default=False)

    def slots(self, free: int) -> int:
        """How many attempts may start now, of ``free`` concurrency slots."""
        if self.opened_at is None:
            return free
        if self.probing or time.monotonic() - self.opened_at < self.cooldown:
            return 0
        self.probing = True
        return min(free, 1)

    @property
    def open(self) -> bool:
        return self.opened_at is not None

    def succeeded(self) -> None:
        self.failures, self.opened_at, self.probing = 0, None, False

    def failed(self) -> None:
        self.failures += 1
        if self.probing or self.failures >= self.threshold:
            self.opened_at, self.probing = time.monotonic(), False
