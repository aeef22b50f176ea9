"""Prometheus metrics: every counter, gauge and histogram relay exposes on `/metrics`.

One `Metrics` per app (its own registry, so tests can run several). Label values come from
closed sets or from the operator's config (source, route and destination names, delivery
reasons); an unknown source in a URL is counted as `_unknown`. An event type, which only
authenticated senders choose, is cut to 64 characters, and once `MAX_EVENT_TYPES` distinct
types have been seen any new one is counted as `_other`: a sender that mints types (a generic
source, a buggy integration) cannot grow the metrics without bound. No label ever holds a
secret, a URL or free text from a request.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from relay.records import DestinationStats, InboxStats

UNKNOWN_SOURCE = "_unknown"
OTHER_TYPE = "_other"
# Anchor has 13 event types, Deck 32, a Tabstack run 4: room for generic sources on top
MAX_EVENT_TYPES = 200
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self._types: set[str] = set()
        self._received: dict[str, Any] = {}
        self._accepted: dict[tuple[str, str], Any] = {}
        r = self.registry = CollectorRegistry()
        self.received = Counter(
            "relay_requests_received", "Requests to /hooks per source", ["source"], registry=r
        )
        self.rejected = Counter(
            "relay_requests_rejected",
            "Requests refused, per source and reason (the error code of the answer)",
            ["source", "reason"],
            registry=r,
        )
        self.accepted = Counter(
            "relay_events_accepted", "Events persisted, per source and type", ["source", "type"],
            registry=r,
        )  # fmt: skip
        self.duplicates = Counter(
            "relay_events_duplicate", "Events ignored as already seen", ["source"], registry=r
        )
        self.dropped = Counter(
            "relay_events_dropped", "Events dropped by a route", ["route"], registry=r
        )
        self.unrouted = Counter(
            "relay_events_unrouted", "Events no route sent anywhere", ["source"], registry=r
        )
        self.routed = Counter(
            "relay_messages_routed", "Messages enqueued per route and destination",
            ["route", "destination"], registry=r,
        )  # fmt: skip
        self.rendered = Counter(
            "relay_messages_rendered", "Messages rendered per destination", ["destination"],
            registry=r,
        )  # fmt: skip
        self.silenced = Counter(
            "relay_messages_silenced",
            "Messages recorded as silenced (held back by a silence) per destination",
            ["destination"],
            registry=r,
        )
        self.interactions = Counter(
            "relay_slack_interactions",
            "Slack button clicks by action (`none` when refused before it was read) and result",
            ["action", "result"],
            registry=r,
        )
        self.fallbacks = Counter(
            "relay_template_fallbacks",
            "Messages sent as the safe default because a template failed",
            ["destination"],
            registry=r,
        )
        self.deliveries = Counter(
            "relay_deliveries",
            "Delivery attempts per destination, outcome (sent, retry, permanent) and reason",
            ["destination", "outcome", "reason"],
            registry=r,
        )
        self.dead = Counter(
            "relay_dead_letters", "Messages that became dead letters", ["destination", "reason"],
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "relay_delivery_latency_seconds",
            "From acceptance to Slack taking the message",
            ["destination"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600),
            registry=r,
        )
        self.queue = Gauge(
            "relay_outbox_messages", "Outbox messages per destination and status",
            ["destination", "status"], registry=r,
        )  # fmt: skip
        self.oldest = Gauge(
            "relay_outbox_oldest_pending_age_seconds",
            "Age of the oldest undelivered message per destination (0 when none)",
            ["destination"],
            registry=r,
        )
        self.inbox = Gauge(
            "relay_inbox_events", "Accepted events waiting to be routed and rendered", registry=r
        )
        self.inbox_oldest = Gauge(
            "relay_inbox_oldest_age_seconds",
            "Age of the oldest accepted event not yet routed (0 when none)",
            registry=r,
        )
        self.generation = Gauge(
            "relay_config_generation", "How many times the config was loaded", registry=r
        )
        self.reloads = Counter(
            "relay_config_reloads", "Reload attempts by result", ["result"], registry=r
        )

    def delivery_families(self) -> list[Metric]:
        """The delivery worker's metrics as they stand (a delivery process reports them)."""
        worker = (self.deliveries, self.dead, self.latency)
        return [family for metric in worker for family in metric.collect()]

    def delegate_deliveries(self, collector: Collector) -> None:
        """The worker runs in another process: its metrics come from `collector` instead."""
        for metric in (self.deliveries, self.dead, self.latency):
            self.registry.unregister(metric)
        self.registry.register(collector)

    def count_received(self, source: str) -> None:
        """`received` for a source label, with its child kept: this runs on every request."""
        child = self._received.get(source)
        if child is None:
            child = self._received[source] = self.received.labels(source)
        child.inc()

    def count_accepted(self, source: str, kind: str) -> None:
        key = (source, self.event_type(kind))  # bounded: configured sources x capped types
        child = self._accepted.get(key)
        if child is None:
            child = self._accepted[key] = self.accepted.labels(*key)
        child.inc()

    def event_type(self, kind: str) -> str:
        """The `type` label of an event type: itself (at most 64 characters) or `_other`."""
        label = kind[:64]
        if label not in self._types:
            if len(self._types) >= MAX_EVENT_TYPES:
                return OTHER_TYPE
            self._types.add(label)
        return label

    def observe_queue(self, stats: Iterable[DestinationStats], now: float) -> None:
        for s in stats:
            for status, value in (
                ("pending", s.pending),
                ("inflight", s.inflight),
                ("dead", s.dead),
                ("muted", s.muted),
                ("silenced", s.silenced),
                ("digest", s.digesting),
            ):
                self.queue.labels(s.destination, status).set(value)
            age = now - s.oldest_pending_at if s.oldest_pending_at else 0.0
            self.oldest.labels(s.destination).set(max(0.0, age))

    def observe_inbox(self, inbox: InboxStats, now: float) -> None:
        self.inbox.set(inbox.waiting)
        self.inbox_oldest.set(max(0.0, now - inbox.oldest_at) if inbox.oldest_at else 0.0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
