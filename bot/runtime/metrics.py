"""Prometheus metrics, served at `/metrics` on `ICC_HEALTH_ADDR` (`bot.web.ops`).

Named as Prometheus asks: the `icc_` prefix, counters ending `_total` (the client adds it),
durations in `_seconds`, a timestamp in `_timestamp_seconds`. Every label takes a bounded set of
values (a command's declared name, an outcome, a channel, a reason from `SEND_FAILURES`), never
text someone typed. Each metric moves where its event happens: the dispatcher counts commands,
the pager and the fallback pages and failures, the answers acknowledgements, the scheduler
lateness, the sync loop the last sync, the leadership the leader state.

One registry per App (no module-level singletons), so that tests and two bots in one process
never share counts; it carries the process and platform collectors the client ships.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

# The channels a page goes out on or an acknowledgement comes in by.
MATRIX, EMAIL, SMS, LINK = "matrix", "email", "sms", "link"
# Why a send did not leave: the label values of `icc_send_failures_total{reason}`.
UNREACHABLE = "unreachable"  # the server, gateway or homeserver could not be reached
REFUSED = "refused"  # it answered, and refused the message
OFF = "off"  # the channel is not configured
NO_ADDRESS = "no_address"  # the directory gives the person no address on the channel
TEMPLATE = "template"  # the operator's template does not render
NOT_PRIVATE = "not_private"  # one of the bot's rooms holds someone outside the directory
OTHER = "other"
SEND_FAILURES = (UNREACHABLE, REFUSED, OFF, NO_ADDRESS, TEMPLATE, NOT_PRIVATE, OTHER)
# How an acknowledgement came (`ack_how`): all but the link, e-mail and SMS came by Matrix.
ACK_CHANNELS = {LINK: LINK, EMAIL: EMAIL, SMS: SMS}
UNKNOWN_COMMAND = "unknown"  # the command label of anything not declared


def build_version() -> str:
    try:
        return version("icc-liaison-bot")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        Info("icc_build", "The bot's version", registry=registry).info({"version": build_version()})
        self.commands = Counter(
            "icc_commands",
            "Events handled (commands, and the replies and reactions the bot takes), "
            "by command and outcome",
            ["command", "outcome"],
            registry=registry,
        )
        self.command_seconds = Histogram(
            "icc_command_duration_seconds",
            "From handling's start to the answer sent, by command",
            ["command"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=registry,
        )
        self.command_errors = Counter(
            "icc_command_errors",
            "Commands that failed on the bot's side (the database unavailable included)",
            registry=registry,
        )
        self.pages_sent = Counter(
            "icc_pages_sent",
            "Page messages that left, by channel (Matrix repeats included)",
            ["channel"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "icc_fallbacks",
            "Times a person was tried on a further channel, by that channel",
            ["channel"],
            registry=registry,
        )
        self.send_failures = Counter(
            "icc_send_failures",
            "Page sends that did not leave (after their retries), by channel and reason",
            ["channel", "reason"],
            registry=registry,
        )
        self.acks = Counter(
            "icc_acknowledgements",
            "Pages acknowledged, by the channel the answer came by and how",
            ["channel", "how"],
            registry=registry,
        )
        self.ack_latency = Histogram(
            "icc_acknowledgement_latency_seconds",
            "From delivery to acknowledgement, by the channel the answer came by",
            ["channel"],
            buckets=(10, 30, 60, 120, 300, 600, 900, 1800, 3600),
            registry=registry,
        )
        self.escalations = Counter(
            "icc_escalation_steps",
            "Escalation steps carried out, by step (escalate: paged again and backup paged; "
            "unreachable: the room told)",
            ["step"],
            registry=registry,
        )
        self.lateness = Histogram(
            "icc_timer_lateness_seconds",
            "How late a durable timer ran after it fell due, by kind (page.step: escalations)",
            ["kind"],
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900),
            registry=registry,
        )
        self.last_sync = Gauge(
            "icc_last_sync_timestamp_seconds",
            "When a sync with the homeserver last completed (Unix time)",
            registry=registry,
        )
        self.leader = Gauge(
            "icc_leader",
            "1 while this instance is the active one (holds the leader lock), else 0",
            registry=registry,
        )

    def acknowledged(self, how: str, latency_seconds: float | None) -> None:
        channel = ACK_CHANNELS.get(how, MATRIX)
        self.acks.labels(channel, how).inc()
        if latency_seconds is not None:
            self.ack_latency.labels(channel).observe(latency_seconds)

    def send_failed(self, channel: str, reason: str) -> None:
        self.send_failures.labels(channel, reason if reason in SEND_FAILURES else OTHER).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
