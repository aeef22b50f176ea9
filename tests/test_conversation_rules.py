"""The pure rules behind conversations: thread keys and steps per provider, quiet-hour
intervals, digest and repeat-counter messages, and the config errors for them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from relay.config import RepeatConfig, ThreadConfig, TimeInterval, parse_config
from relay.conversation.digest import build, group_key
from relay.conversation.repeat import with_counter
from relay.conversation.steps import key_value, steps
from relay.errors import ConfigError
from relay.event import Event
from relay.messages import Blocks, Card, Message
from relay.records import DigestBatch, DigestItem, Step
from relay.render.formats.slack import payload
from relay.routing.schedule import active

CREATED = datetime(2026, 5, 24, 12, 0, tzinfo=UTC)


def event(provider: str, kind: str, **data: Any) -> Event:
    return Event(provider, provider, "e1", kind, data, created=CREATED)


AUTO = ThreadConfig()


def test_anchor_events_of_one_session_share_a_thread_key() -> None:
    (a,) = steps(event("anchor", "task.completed", session_id="s1"), AUTO, None, route="r")
    (b,) = steps(event("anchor", "session.recording.ready", session_id="s1"), AUTO, None, route="r")
    assert a.thread == b.thread == "thread:anchor:s1"
    assert a.update is None and not a.broadcast


def test_anchor_falls_back_to_execution_id_and_failures_are_broadcast() -> None:
    (step,) = steps(event("anchor", "task.failed", execution_id="x9"), AUTO, None, route="r")
    assert step.thread == "thread:anchor:x9" and step.broadcast


@pytest.mark.parametrize("field", ["requestId", "request_id", "intervention_id"])
def test_anchor_intervention_pairs_by_whichever_id_it_carries(field: str) -> None:
    (ask,) = steps(
        event("anchor", "intervention.requested", session_id="s", **{field: "i1"}),
        AUTO,
        None,
        route="r",
    )
    (done,) = steps(
        event("anchor", "intervention.resolved", session_id="s", **{field: "i1"}),
        AUTO,
        None,
        route="r",
    )
    assert ask.register == done.update == "intervention:anchor:i1"
    assert ask.opens == done.closes == "intervention-open:anchor:s"  # the session's latest
    assert ask.broadcast and ask.thread == done.thread == "thread:anchor:s"
    assert not done.broadcast


def test_anchor_intervention_without_an_id_pairs_by_its_session() -> None:
    (ask,) = steps(event("anchor", "intervention.requested", session_id="s"), AUTO, None, route="r")
    (done,) = steps(event("anchor", "intervention.resolved", session_id="s"), AUTO, None, route="r")
    assert ask.register is None and ask.opens == "intervention-open:anchor:s"
    assert done.update == done.closes == "intervention-open:anchor:s"
    assert ask.thread == done.thread == "thread:anchor:s"


def test_steps_stored_before_the_intervention_slots_still_read() -> None:
    stored = {  # a resolution's step as an older relay stored it
        "thread": "thread:anchor:s",
        "update": "intervention:anchor:i1",
        "order_at": 1.0,
        "ttl": 60.0,
    }
    step = Step.from_json(stored)
    assert step == Step(
        thread="thread:anchor:s", update="intervention:anchor:i1", order_at=1.0, ttl=60.0
    )
    assert step.closes is None and step.opens is None
    assert Step.from_json({**stored, "a_later_field": 1}) == step  # and newer rows, for older


def test_deck_task_runs_update_their_parent_and_failures_also_reply() -> None:
    (queued,) = steps(event("deck", "task_run.queued", id="trun_1"), AUTO, None, route="r")
    assert queued.update == queued.thread == "thread:deck:trun_1"
    assert queued.order_at == CREATED.timestamp()
    update, reply = steps(event("deck", "task_run.failed", id="trun_1"), AUTO, None, route="r")
    assert update.update == update.thread and not update.broadcast
    assert reply.update is None and reply.broadcast and reply.thread == update.thread
    (agent,) = steps(event("deck", "agent.created", id="agt_1"), AUTO, None, route="r")
    assert agent == Step(order_at=CREATED.timestamp()) and not agent.joins


def test_tabstack_run_events_update_one_message() -> None:
    for kind in ("run.progress", "run.completed"):
        (step,) = steps(event("tabstack", kind, run_id="run_1"), AUTO, None, route="r")
        assert step.update == step.thread == "thread:tabstack:run_1"
    assert len(steps(event("tabstack", "run.failed", run_id="run_1"), AUTO, None, route="r")) == 2
    progress = event("tabstack", "run.progress", run_id="run_1")
    assert steps(progress, None, None, route="r") == ()  # no thread: progress is not posted


def test_configured_keys_paths_and_jinja() -> None:
    e = event("generic", "job.done", job={"id": 7}, team="ops")
    assert key_value("data.job.id", e) == "7"
    assert key_value("{{ data.team }}-{{ data.job.id }}", e) == "ops-7"
    assert key_value("data.missing", e) is None
    assert key_value("data.job", e) is None  # an object is not a key
    assert key_value("{{ data.job.id.__class__.__mro__ }}", e) in (None, "")  # sandboxed
    (step,) = steps(e, ThreadConfig(key="data.team", update=["job.*"]), None, route="r")
    assert step.update == step.thread == "thread:generic:ops"
    (flat,) = steps(e, ThreadConfig(key="data.nothing"), None, route="r")
    assert flat.thread is None


def test_repeat_fingerprint_and_round_trip() -> None:
    repeat = RepeatConfig(key=["data.task_id", "data.error.type"], interval=60)
    e = event("anchor", "task.failed", task_id="t1", error={"type": "timeout"})
    (step,) = steps(e, None, repeat, route="flaky")
    assert step.repeat == "repeat:anchor:flaky:t1|timeout" and step.repeat_interval == 60
    assert Step.from_json(step.to_json()) == step


# ---------------------------------------------------------------- quiet hours

PARIS_NIGHTS = TimeInterval(
    weekdays=["monday:friday"],
    times=[{"start_time": "22:00", "end_time": "07:00"}],  # type: ignore[list-item]
    location="Europe/Paris",
)


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize(
    ("when", "muted"),
    [
        ("2026-11-23T21:30:00+00:00", True),  # Monday 22:30 in Paris
        ("2026-11-23T20:30:00+00:00", False),  # Monday 21:30 in Paris
        ("2026-11-24T05:59:00+00:00", True),  # Tuesday 06:59 in Paris (wraps past midnight)
        ("2026-11-24T06:00:00+00:00", False),  # Tuesday 07:00: the end is exclusive
        ("2026-11-28T23:00:00+00:00", False),  # Sunday 00:00 in Paris: not a weekday
    ],
)
def test_time_intervals_follow_weekdays_times_and_zone(when: str, muted: bool) -> None:
    intervals = {"nights": [PARIS_NIGHTS]}
    assert (active(intervals, ["nights"], at(when)) == "nights") is muted


def test_weekday_ranges_wrap_around_the_week() -> None:
    weekend = {"w": [TimeInterval(weekdays=["saturday:sunday"])]}
    assert active(weekend, ["w"], at("2026-11-29T12:00:00+00:00")) == "w"  # Sunday
    assert active(weekend, ["w"], at("2026-11-30T12:00:00+00:00")) is None  # Monday
    around = {"w": [TimeInterval(weekdays=["friday:monday"])]}
    assert active(around, ["w"], at("2026-11-30T12:00:00+00:00")) == "w"


def test_bad_intervals_and_unknown_references_name_their_path(tmp_path: Path) -> None:
    text = """
sources: {a: {provider: anchor}}
destinations: {c: {type: console}}
time_intervals:
  nights: [{weekdays: [funday], times: [{start_time: "25:00", end_time: "07:00"}],
            location: Mars/Olympus}]
routes:
  - {to: [c], mute_during: [nigths], thread: {key: "not a key!"}}
  - {to: [c], repeat: {key: ["{{ data.x | }}"]}}
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "relay.yaml", {})
    problems = "\n".join(caught.value.detailed)
    assert "time_intervals.nights[0].weekdays: 'funday' is not a weekday" in problems
    assert "time_intervals.nights[0].times[0].start_time: '25:00' is not a time of day" in problems
    assert "time_intervals.nights[0].location: 'Mars/Olympus' is not a known time zone" in problems
    assert "routes[0].thread.key: 'not a key!' is not a key" in problems
    assert "routes[1].repeat.key: '{{ data.x | }}' is not a valid Jinja expression" in problems


def test_unknown_interval_is_named(tmp_path: Path) -> None:
    text = """
sources: {a: {provider: anchor}}
destinations: {c: {type: console}}
time_intervals: {nights: [{times: [{start_time: "22:00", end_time: "07:00"}]}]}
routes: [{to: [c], mute_during: [nigths]}]
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "relay.yaml", {})
    assert caught.value.detailed == [
        "routes[0].mute_during[0]: unknown time interval 'nigths' (known: nights)"
    ]


# ---------------------------------------------------------------- digests and counters


def item(i: int, kind: str = "session.failed", mentions: tuple[str, ...] = ()) -> DigestItem:
    message = Card(
        status="failure", title="Session failed", fact=f"ses_{i}", summary=f"ses_{i}",
        mentions=mentions,
    )  # fmt: skip
    return DigestItem(i, "anchor", f"e{i}", kind, "anchor/session.failed", message, 1e9 + i)


def legacy_item(i: int, mention: str) -> DigestItem:
    """A digest item as an earlier relay stored it: Block Kit with the mention written in."""
    message = Blocks.from_json({
        "text": f"{mention} :x: Session failed — ses_{i}",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"ses_{i}"}}],
        "mention": mention,
        "line": f":x: Session failed — ses_{i}",
    })  # fmt: skip
    return DigestItem(i, "anchor", f"e{i}", "session.failed", "anchor/session.failed", message,
                      1e9 + i)  # fmt: skip


def batch(items: list[DigestItem], show: int = 5) -> DigestBatch:
    return DigestBatch(1, "batch-failures", "k", "ops", "slack:ops", show, tuple(items))


def test_a_digest_counts_lists_and_says_how_many_more() -> None:
    items = [item(i) for i in range(7)] + [item(7, "batch.failed")]
    message = payload(build(batch(items, show=3)).message)
    assert message["text"] == ":package: 8 events"
    text = str(message["blocks"])
    assert "7 x `session.failed`, 1 x `batch.failed`" in text
    assert ":x: Session failed — ses_0" in text and "ses_2" in text and "ses_3" not in text
    assert "…and 5 more events" in text


def test_a_digest_mentions_once_and_a_lone_item_posts_itself() -> None:
    message = payload(build(batch([item(i, mentions=("@here",)) for i in range(3)])).message)
    assert message["text"] == "<!here> :package: 3 events: session.failed"
    assert str(message["blocks"]).count("<!here>") == 1
    lone = build(batch([item(4)]))
    assert payload(lone.message)["text"] == ":x: Session failed — ses_4"
    assert lone.template == "anchor/session.failed"


def test_a_digest_of_items_stored_by_an_earlier_relay_reads_their_mention_and_line() -> None:
    digest = build(batch([legacy_item(i, "<!here>") for i in range(2)] + [item(2)]))
    assert digest.message.mentions == ("@here",)
    message = payload(digest.message)
    assert message["text"] == "<!here> :package: 3 events: session.failed"
    shown = str(message["blocks"])
    assert shown.count("<!here>") == 1 and ":x: Session failed — ses_0" in shown


def test_group_keys() -> None:
    e = event("anchor", "session.failed", batch_id="b1")
    assert group_key(e, ["type", "data.batch_id"]) == "session.failed|b1"
    assert group_key(e, ["data.nothing"]) == ""


@pytest.mark.parametrize("kind", ["blocks", "card"])
def test_repeat_counter_replaces_itself(kind: str) -> None:
    message: Message = Blocks(
        "boom", ({"type": "section", "text": {"type": "mrkdwn", "text": "x"}},)
    )
    if kind == "card":
        message = Card(status="failure", title="boom")
    twice = with_counter(message, 2, 1e9, 1e9 + 60)
    thrice = payload(with_counter(twice, 3, 1e9, 1e9 + 120))
    assert thrice["text"].endswith("boom (seen 3 times)")
    counters = [b for b in thrice["blocks"] if b.get("block_id") == "relay-repeat"]
    assert len(counters) == 1 and "Seen 3 times" in str(counters[0])
