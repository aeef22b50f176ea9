"""Silences in the router, on both backends, with an injected clock: a matching event's message
is recorded as `silenced` with the silence's id and never delivered; once the silence expires
(or is expired) new events flow again; overlapping silences; a silence written through one
store is honoured by a router on another connection (a replica); invalid requests name their
field; a database written by the previous schema upgrades with its rows."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from oldschema import store_at

from relay.config import Match, parse_config
from relay.event import Event
from relay.metrics import Metrics
from relay.ops import silences as service
from relay.pipeline import Pipeline
from relay.records import Status
from relay.runtime import Runtime, build_runtime
from relay.silences import SilenceError, SilenceRequest, SilenceSet, build, parse_request
from relay.store import PostgresStore, Store, open_store
from relay.store.schema import VERSION

CONFIG = """
sources:
  anchor: {provider: anchor, secrets: [test-secret]}
destinations:
  alerts: {type: console}
  events: {type: console}
routes:
  - {match: {type: task.failed}, to: [alerts, events]}
default: {to: [events]}
"""
T0 = 1_800_000_000.0


def runtime(tmp_path: Path) -> Runtime:
    return build_runtime(parse_config(CONFIG, tmp_path / "relay.yaml", {}))


def event(n: int, kind: str = "task.failed", task: str = "tsk_4f8w", **data: Any) -> Event:
    return Event("anchor", "anchor", f"evt_{n}", kind, {"task_id": task, **data})


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else "relay.db"
    s = open_store(url, tmp_path)
    await s.open()
    yield s
    await s.close()


async def route_all(pipeline: Pipeline) -> None:
    while await pipeline.route_pending():
        pass


def request(*matchers: str, **more: Any) -> SilenceRequest:
    return parse_request({"matchers": list(matchers), **more})


async def statuses(store: Store) -> dict[str, list[tuple[str, str, str | None]]]:
    """Each status's rows as (event id, destination, silence id)."""
    found = {}
    for status in (Status.PENDING, Status.SILENCED):
        rows = await store.rows(status)
        found[status.value] = [(r.event_id, r.destination, r.silence_id) for r in rows]
    return found


async def test_a_matching_event_is_silenced_until_the_silence_ends(
    store: Store, tmp_path: Path
) -> None:
    clock = Clock()
    metrics = Metrics()
    pipeline = Pipeline(runtime(tmp_path), store, clock=clock, metrics=metrics)
    wanted = request("source=anchor", "type=task.failed", "data.task_id=tsk_4f8w", duration="2h")
    silence = await service.create(store, wanted, clock(), ["alerts", "events"])
    assert silence.ends_at == T0 + 7200

    await pipeline.accept(event(1))  # matches: both its messages held back
    await pipeline.accept(event(2, task="tsk_other"))  # another task flows
    await pipeline.accept(event(3, kind="task.completed"))  # another type flows
    await route_all(pipeline)
    assert await statuses(store) == {
        "pending": [("evt_2", "alerts", None), ("evt_2", "events", None),
                    ("evt_3", "events", None)],
        "silenced": [("evt_1", "alerts", silence.id), ("evt_1", "events", silence.id)],
    }  # fmt: skip
    text = metrics.exposition().decode()
    assert 'relay_messages_silenced_total{destination="alerts"} 1.0' in text
    assert 'relay_messages_silenced_total{destination="events"} 1.0' in text

    clock.now = T0 + 7200  # the silence has ended: the same task's next event flows
    await pipeline.accept(event(4))
    await route_all(pipeline)
    pending = (await statuses(store))["pending"]
    assert ("evt_4", "alerts", None) in pending and ("evt_4", "events", None) in pending
    # a silenced message is never sent afterwards: nothing claims it
    claimed = await store.claim(T0 + 8000, T0 + 8060, rate=100, burst=100, limit=100)
    assert "evt_1" not in {row.event_id for c in claimed.claimed for row in c.rows}
    (stats_alerts,) = [s for s in await store.stats() if s.destination == "alerts"]
    assert stats_alerts.silenced == 1


async def test_expiring_a_silence_lets_the_next_events_flow_and_it_stays_listed(
    store: Store, tmp_path: Path
) -> None:
    clock = Clock()
    pipeline = Pipeline(runtime(tmp_path), store, clock=clock)
    silence = await service.create(store, request("type=task.*", duration="1h"), clock())
    await pipeline.accept(event(1))
    await route_all(pipeline)
    clock.now += 60
    expired = await service.expire(store, silence.id, clock())
    assert expired.ends_at == clock.now and expired.state(clock.now).value == "expired"
    await pipeline.accept(event(2))
    await route_all(pipeline)
    found = await statuses(store)
    assert [e for e, _, _ in found["silenced"]] == ["evt_1", "evt_1"]
    assert [e for e, _, _ in found["pending"]] == ["evt_2", "evt_2"]
    assert await service.listing(store, clock()) == []
    assert [s.id for s in await service.listing(store, clock(), expired=True)] == [silence.id]
    with pytest.raises(service.SilenceNotFound):
        await service.expire(store, "sil_nope", clock())
    # kept for the history period (`store.history`, say 7 days), then pruned with history
    week = 7 * 86400
    await store.prune_history(clock() + 6 * 86400 - week, 1000)
    assert len(await store.silences()) == 1
    await store.prune_history(clock() + 8 * 86400 - week, 1000)
    assert await store.silences() == []


async def test_overlapping_silences_the_one_lasting_longest_is_named_then_the_other(
    store: Store, tmp_path: Path
) -> None:
    clock = Clock()
    pipeline = Pipeline(runtime(tmp_path), store, clock=clock)
    short = await service.create(store, request("type=task.failed", duration="10m"), clock())
    long = await service.create(
        store, request("data.task_id=tsk_4f8w", duration="1h", destination="alerts"), clock()
    )
    await pipeline.accept(event(1))
    clock.now += 1200  # the short one has ended; the long one holds only `alerts`
    await pipeline.accept(event(2))
    clock.now += 3600  # both ended
    await pipeline.accept(event(3))
    await route_all(pipeline)
    assert await statuses(store) == {
        "pending": [("evt_2", "events", None), ("evt_3", "alerts", None),
                    ("evt_3", "events", None)],
        "silenced": [("evt_1", "alerts", long.id), ("evt_1", "events", short.id),
                     ("evt_2", "alerts", long.id)],
    }  # fmt: skip


async def test_a_silence_starting_later_holds_nothing_before_its_start(
    store: Store, tmp_path: Path
) -> None:
    clock = Clock()
    pipeline = Pipeline(runtime(tmp_path), store, clock=clock)
    await service.create(
        store, request("type=task.failed", starts_at=T0 + 600, duration="1h"), clock()
    )
    await pipeline.accept(event(1))
    clock.now += 900
    await pipeline.accept(event(2))
    await route_all(pipeline)
    found = await statuses(store)
    assert {e for e, _, _ in found["pending"]} == {"evt_1"}
    assert {e for e, _, _ in found["silenced"]} == {"evt_2"}


async def test_a_silence_written_through_one_replica_holds_on_another(
    pg_url: str, tmp_path: Path
) -> None:
    one, two = PostgresStore(pg_url), PostgresStore(pg_url)
    await one.open()
    await two.open()
    try:
        clock = Clock()
        router = Pipeline(runtime(tmp_path), two, clock=clock)
        await router.accept(event(1))
        await route_all(router)
        silence = await service.create(one, request("type=task.failed", duration="1h"), clock())
        await router.accept(event(2))  # the next batch of the other replica reads it
        await route_all(router)
        await service.expire(one, silence.id, clock() + 1)
        clock.now += 2
        await router.accept(event(3))
        await route_all(router)
        found = await statuses(two)
        assert {e for e, _, _ in found["pending"]} == {"evt_1", "evt_3"}
        assert {e for e, _, _ in found["silenced"]} == {"evt_2"}
    finally:
        await one.close()
        await two.close()


# ---------------------------------------------------------------- validation, pure


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"matchers": ["colour=red"], "duration": "1h"},
         "matchers[0]: unknown matcher 'colour' (expected source, type or data.PATH)"),
        ({"matchers": ["task_id"], "duration": "1h"},
         "matchers[0]: 'task_id' is not KEY=VALUE (source=, type=, data.PATH=)"),
        ({"matchers": ["data.error=~(unclosed"], "duration": "1h"},
         "match.when[0]: matches: '(unclosed' is not a valid regex:"
         " missing ), unterminated subpattern at position 0"),
        ({"match": {"when": [{"path": "x", "equals": 1, "gt": 2}]}, "duration": "1h"},
         "match.when[0]: needs exactly one of equals, not_equals, one_of, matches, exists, gt,"
         " gte, lt, lte (got equals, gt)"),
        ({"match": {"type": "task.failed", "colour": "red"}, "duration": "1h"},
         "match.colour: Extra inputs are not permitted"),
        ({"matchers": ["type=task.failed"], "duration": "soon"},
         "duration: 'soon' is not a duration (expected e.g. 30s, 5m, 24h)"),
        ({"matchers": ["type=task.failed"]},
         "ends_at: give exactly one of `ends_at` or `duration` (`--until`/`--for`)"),
        ({"matchers": ["type=task.failed"], "ends_at": T0 - 1},
         "ends_at: must be after starts_at"),
        ({"matchers": ["type=task.failed"], "starts_at": T0 - 100, "ends_at": T0 - 1},
         "ends_at: is in the past: the silence would never hold anything"),
        ({"matchers": ["type=x"], "ends_at": float("inf")},
         "ends_at: Input should be a finite number"),
        ({"duration": "1h"},
         "match: a silence needs at least one matcher"
         " (source, type, data.PATH, destination or key)"),
        ({"matchers": ["type=x"], "destination": "opps", "duration": "1h"},
         "destination: unknown destination 'opps' (configured: alerts, events)"),
        ({"matchers": ["type=x"], "duration": "1h", "comment": "x" * 1001},
         "comment: String should have at most 1000 characters"),
    ],
)  # fmt: skip
def test_invalid_silences_name_the_field(body: dict[str, Any], message: str) -> None:
    with pytest.raises(SilenceError) as caught:
        build(parse_request(body), T0, destinations=["alerts", "events"])
    assert str(caught.value) == message


def test_matchers_are_a_routes_match() -> None:
    silence = build(
        request("source=anchor", "type=task.*,session.failed", "data.attempt=3",
                "data.region!=eu", "data.error=~^Timeout", duration="1h"),
        T0,
    )  # fmt: skip
    assert silence.match == Match.model_validate(
        {
            "source": ["anchor"],
            "type": ["task.*", "session.failed"],
            "when": [
                {"path": "attempt", "one_of": ["3", 3]},
                {"path": "region", "not_equals": "eu"},
                {"path": "error", "matches": "^Timeout"},
            ],
        }
    )
    held = SilenceSet([silence])
    hit = event(1, attempt=3, region="us", error="Timeout after 30s")
    assert held.holding(hit, "alerts", T0) == silence
    assert held.holding(event(1, attempt="3", region="us", error="Timeout"), "x", T0) == silence
    assert held.holding(event(1, attempt=4, region="us", error="Timeout"), "x", T0) is None
    assert held.holding(event(1, attempt=3, region="eu", error="Timeout"), "x", T0) is None
    assert held.holding(event(1, kind="batch.failed", attempt=3, error="Timeout"), "x", T0) is None
    assert held.holding(hit, "alerts", T0 + 3600) is None  # ended
    assert held.holding(hit, "alerts", T0 - 1) is None  # not started


# ---------------------------------------------------------------- upgrading in place


# what a database of the previous schema holds: a sent row and a queued one
_QUEUED = (
    "INSERT INTO outbox (event_source, event_id, event_type, destination, pace_key, template,"
    " payload, status, created_at, next_attempt_at) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
SEEDED = [
    (_QUEUED, ("anchor", f"evt_{n}", "task.failed", "alerts", "console:alerts", "t",
               '{"text": "hi"}', status, T0, T0))
    for n, status in ((1, "sent"), (2, "pending"))
]  # fmt: skip


@pytest.fixture
def fixtures(request: pytest.FixtureRequest) -> pytest.FixtureRequest:
    return request


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_database_written_by_the_previous_schema_upgrades_with_its_rows(
    backend: str, tmp_path: Path, fixtures: pytest.FixtureRequest
) -> None:
    # the schema relay wrote before silences (migration 8)
    store = store_at(7, backend, tmp_path, fixtures, SEEDED)
    await store.open()
    try:
        assert await store.migrate() == VERSION
        assert [r.event_id for r in await store.rows(Status.SENT)] == ["evt_1"]
        (queued,) = await store.rows(Status.PENDING)
        assert (queued.event_id, queued.silence_id) == ("evt_2", None)
        silence = await service.create(store, request("type=task.failed", duration="1h"), T0)
        assert [s.id for s in await store.silences(T0)] == [silence.id]
    finally:
        await store.close()


async def test_a_condition_on_null_survives_storage(store: Store, tmp_path: Path) -> None:
    clock = Clock()
    pipeline = Pipeline(runtime(tmp_path), store, clock=clock)
    wanted = parse_request(
        {"match": {"when": [{"path": "region", "equals": None}]}, "duration": "1h"}
    )
    silence = await service.create(store, wanted, clock())
    (stored,) = await store.silences()
    assert stored == silence
    await pipeline.accept(event(1, region=None))  # held
    await pipeline.accept(event(2, region="eu"))
    await route_all(pipeline)
    found = await statuses(store)
    assert {e for e, _, _ in found["silenced"]} == {"evt_1"}
    assert {e for e, _, _ in found["pending"]} == {"evt_2"}


THREADED = """
sources:
  anchor: {provider: anchor, secrets: [test-secret]}
destinations:
  alerts: {type: console}
routes:
  - {match: {type: "task.*"}, to: [alerts], thread: auto}
"""


async def test_a_silence_scoped_to_a_thread_key_holds_only_that_conversation(
    store: Store, tmp_path: Path
) -> None:
    """What a "Mute" button on a message does: silence the conversation that message is in."""
    threaded = build_runtime(parse_config(THREADED, tmp_path / "relay.yaml", {}))
    clock = Clock()
    pipeline = Pipeline(threaded, store, clock=clock)
    await pipeline.accept(event(1, session_id="ses_1"))
    await route_all(pipeline)
    (first,) = await store.rows(Status.PENDING)
    assert first.step is not None and first.step.thread == "thread:anchor:ses_1"
    muted = parse_request({"key": first.step.thread, "duration": "1h", "created_by": "U0ALICE"})
    # the preview finds the message the button was on
    (seen,) = await service.previewed(store, muted, clock(), ["alerts"])
    assert seen.row.id == first.id
    silence = await service.create(store, muted, clock(), ["alerts"])
    assert silence.key == "thread:anchor:ses_1"
    await pipeline.accept(event(2, kind="task.completed", session_id="ses_1"))
    await pipeline.accept(event(3, session_id="ses_2"))
    await route_all(pipeline)
    found = await statuses(store)
    assert found["silenced"] == [("evt_2", "alerts", silence.id)]
    assert [e for e, _, _ in found["pending"]] == ["evt_1", "evt_3"]
    (listed,) = await store.silences(clock())
    assert listed.key == "thread:anchor:ses_1"


def test_cli_add_until_a_time_checks_the_destination_against_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from relay.cli import main

    monkeypatch.setenv("RELAY_DATABASE_URL", f"sqlite:///{tmp_path}/relay.db")
    config = tmp_path / "relay.yaml"
    config.write_text(CONFIG)
    base = ["silence", "add", "type=task.failed", "--config", str(config)]
    assert main([*base, "--until", "2099-01-02T03:04Z", "--destination", "alerts"]) == 0
    silence_id = capsys.readouterr().out.strip()
    assert main(["silence", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert (listed["id"], listed["destination"], listed["ends_at"]) == (
        silence_id, "alerts", 4071006240.0  # 2099-01-02 03:04 UTC
    )  # fmt: skip
    assert main([*base, "--until", "2099-01-02", "--destination", "opps"]) == 1
    assert capsys.readouterr().err == (
        "error: destination: unknown destination 'opps' (configured: alerts, events)\n"
    )
    assert main([*base, "--until", "tomorrow"]) == 1
    assert capsys.readouterr().err == (
        "error: ends_at: 'tomorrow' is not a time (expected ISO 8601 such as 2026-12-02T16:05Z)\n"
    )
    assert main([*base, "--until", "2099-01-02", "--for", "1h"]) == 1
    assert "give exactly one of `ends_at` or `duration`" in capsys.readouterr().err
