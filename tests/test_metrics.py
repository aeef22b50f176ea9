"""Metrics labels stay bounded whatever senders send (`relay.metrics`)."""

from __future__ import annotations

from relay.metrics import MAX_EVENT_TYPES, OTHER_TYPE, Metrics


def test_event_type_labels_are_bounded_and_known_ones_keep_their_name() -> None:
    metrics = Metrics()
    for kind in ["task.failed", *(f"minted.{i}" for i in range(3 * MAX_EVENT_TYPES))]:
        metrics.accepted.labels("generic", metrics.event_type(kind)).inc()
    metrics.accepted.labels("anchor", metrics.event_type("task.failed")).inc()
    metrics.accepted.labels("anchor", metrics.event_type("x" * 100)).inc()

    samples = {
        (s.labels["source"], s.labels["type"]): s.value
        for family in metrics.registry.collect()
        if family.name == "relay_events_accepted"
        for s in family.samples
        if s.name == "relay_events_accepted_total"
    }
    # generic: the first 200 types (task.failed and 199 minted) and _other; anchor: two
    assert len(samples) == MAX_EVENT_TYPES + 3
    assert samples[("generic", OTHER_TYPE)] == 2 * MAX_EVENT_TYPES + 1
    assert samples[("generic", "task.failed")] == 1
    assert samples[("anchor", "task.failed")] == 1
    assert samples[("anchor", OTHER_TYPE)] == 1  # a new type, after the limit
    assert metrics.event_type("y" * 100) == OTHER_TYPE
    assert len(Metrics().event_type("y" * 100)) == 64
