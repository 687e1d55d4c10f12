"""Metrics at ``/metrics`` (prometheus_client), summed over every process of a hub.

With ``serve --processes N`` each process writes its counters to files in
``PROMETHEUS_MULTIPROC_DIR`` (set before any process imports prometheus_client), and whichever
process answers a scrape sums them all. Gauges that describe shared state (the outbox, the
inbox backlog) are read from PostgreSQL at scrape time, so every process answers the same.
"""

from __future__ import annotations

import os

__all__ = ["MULTIPROCESS_DIR", "Metrics", "gauge_lines"]

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    """The counters of one hub (its own registry: several hubs may share a process in tests)."""

    def __init__(self) -> None:
        # Imported here, not with this module: the multiprocess folder must be chosen first.
        from prometheus_client import CollectorRegistry, Counter

        self.registry = CollectorRegistry()
        self.accepted = Counter(
            "lienthong_packages_accepted",
            "Packages accepted, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.refused = Counter(
            "lienthong_requests_refused",
            "Requests refused, by error code.",
            ["code"],
            registry=self.registry,
        )

    def count_accepted(self, kind: str) -> None:
        self.accepted.labels(kind=kind).inc()

    def count_refusal(self, code: str) -> None:
        self.refused.labels(code=code).inc()

    def render(self) -> str:
        """The counters in Prometheus text format: all processes' when several serve."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        if os.environ.get(MULTIPROCESS_DIR):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry).decode()
        return generate_latest(self.registry).decode()


def gauge_lines(name: str, help_text: str, samples: dict[str, float] | float) -> list[str]:
    """A gauge in Prometheus text format; ``samples`` maps a label text (``'state="x"'``) to
    a value, or is one value."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    if isinstance(samples, dict):
        lines += [f"{name}{{{labels}}} {value}" for labels, value in samples.items()]
    else:
        lines.append(f"{name} {samples}")
    return lines
