"""Push counters and latency, in the hub's metrics registry."""

from __future__ import annotations

__all__ = ["PushMetrics"]


class PushMetrics:
    """Attempts by outcome and how long each took."""

    def __init__(self, registry) -> None:
        from prometheus_client import Counter, Histogram

        self.attempts = Counter(
            "lienthong_push_attempts",
            "Push attempts, by outcome (acknowledged, retry, failed).",
            ["outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "lienthong_push_latency_seconds",
            "Time from the start of a push attempt to the receiver's answer (or the error).",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )

    def attempted(self, outcome: str, seconds: float) -> None:
        self.attempts.labels(outcome=outcome).inc()
        self.latency.observe(seconds)
