"""Prometheus metrics, served at `/metrics` next to `/healthz`.

One registry per App (no module-level singletons), so that tests and two bots in one process
never share counts.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter(
            "icc_commands", "Commands handled, by outcome", ["outcome"], registry=self.registry
        )
        self.command_errors = Counter(
            "icc_command_errors", "Commands that failed on our side", registry=self.registry
        )
        self.pages_sent = Counter(
            "icc_pages_sent",
            "Page messages delivered to people (repeats included)",
            registry=self.registry,
        )
        self.acks = Counter(
            "icc_acks", "Pages acknowledged, by how", ["how"], registry=self.registry
        )
        self.ack_latency = Histogram(
            "icc_ack_latency_seconds",
            "From delivery to acknowledgement",
            buckets=(10, 30, 60, 120, 300, 600, 900, 1800, 3600),
            registry=self.registry,
        )
        self.escalations = Counter(
            "icc_escalations",
            "Escalation steps carried out, by step",
            ["step"],
            registry=self.registry,
        )
        self.sync_lag = Gauge(
            "icc_sync_lag_seconds", "Seconds since the last completed sync", registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
