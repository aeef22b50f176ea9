"""relay.providers.tabstack.story: a Tabstack run's raw SSE events folded into run.started + one
ending.

Every `*.sse` stream shipped in `relay/samples/tabstack/` is folded
and checked against what the raw stream itself says (how it started, how it ended). A stream may
come with `<name>.expected.json` beside it: a subset of the terminal event's data that must match
exactly (for example `{"outcome": "error", "error": {"code": "X", "message": "..."}}`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from harness import sample, samples
from hypothesis import given
from hypothesis import strategies as st

from relay.event import Event
from relay.providers.tabstack.provider import TabstackProvider
from relay.providers.tabstack.sse import SSEDecoder
from relay.providers.tabstack.story import RunStory

ROOT = Path(__file__).resolve().parents[1]
STREAMS = samples("tabstack", "*.sse")
PROVIDER = TabstackProvider("tabstack", "test-token")
TERMINAL = {"run.completed", "run.failed"}


def raw_events(stream: bytes, run_id: str) -> list[Event]:
    decoded = SSEDecoder().feed(stream + b"\n\n")
    return [PROVIDER.event_from_sse(run_id, seq, n, d) for seq, (n, d, _) in enumerate(decoded)]


def fold(raw: list[Event], run_id: str = "run_1") -> list[Event]:
    story = RunStory(run_id)
    told = [e for event in raw for e in story.feed(event)]
    return told + story.finish()


def sse(*events: tuple[str, Any]) -> list[Event]:
    """Raw events from (name, payload) pairs, as the provider builds them."""
    return [
        PROVIDER.event_from_sse("run_1", seq, name, json.dumps(payload))
        for seq, (name, payload) in enumerate(events)
    ]


def terminal(told: list[Event]) -> Event:
    endings = [e for e in told if e.type in TERMINAL]
    assert len(endings) == 1, [e.type for e in told]
    assert told[-1] is endings[0]
    return endings[0]


def test_streams_were_found() -> None:
    assert {p.name for p in STREAMS} >= {"run-success.sse", "run-error-current-format.sse"}


@pytest.mark.parametrize("stream", STREAMS, ids=lambda p: p.name)
def test_every_fixture_stream_tells_started_and_one_ending(stream: Path) -> None:
    raw = raw_events(stream.read_bytes(), stream.stem)
    names = [e.type for e in raw]
    told = fold(raw, stream.stem)
    end = terminal(told)
    started = [e for e in told if e.type == "run.started"]
    if {"start", "task:started"} & set(names):
        assert len(started) == 1 and told[0] is started[0]
        first = next(e for e in raw if e.type in ("start", "task:started"))
        assert started[0].id == first.id
        assert started[0].data["task"] == first.data.get("task")
    else:
        assert started == []
    assert len(told) == len(started) + 1
    for event in told:
        assert event.source == "tabstack" and event.provider == "tabstack"
        assert event.data["run_id"] == stream.stem

    failed_by = {"error", "task:aborted"} & set(names) or any(
        e.type == "complete" and e.data.get("success") is not True for e in raw
    )
    succeeded = any(
        e.type in ("complete", "task:completed") and e.data.get("success") is True for e in raw
    )
    expected_type = "run.failed" if failed_by or not succeeded else "run.completed"
    assert end.type == expected_type
    assert end.data["success"] is (expected_type == "run.completed")
    assert end.data["steps"] == names.count("agent:step")
    assert end.data["events"] <= len(raw)

    expected_file = stream.with_suffix(".expected.json")
    if expected_file.exists():
        expected = json.loads(expected_file.read_text())
        assert {k: end.data.get(k) for k in expected} == expected


def test_success_in_the_documented_format() -> None:
    stream = sample("tabstack", "run-success.sse")
    told = fold(raw_events(stream.read_bytes(), "r"), "r")
    assert [(e.type, e.id) for e in told] == [("run.started", "r:0"), ("run.completed", "r:10")]
    assert told[0].data == {
        "run_id": "r",
        "task": "Find the product price",
        "url": "https://example.com/product",
    }
    data = told[1].data
    assert data["outcome"] == "completed" and data["success"] is True
    assert data["final_answer"] == "The product costs $19.99"
    assert data["error"] is None
    assert (data["actions"], data["iterations"], data["duration_ms"]) == (3, None, None)
    assert data["steps"] == 1 and data["events"] == 11
    assert data["pages"] == [
        {"title": "Acme Widget - Example Store", "url": "https://example.com/product"}
    ]
    assert data["status_message"] == "Task plan created"
    assert data["plan"].startswith("1. Navigate to product page")
    assert data["extracted"] == {"price": "$19.99", "currency": "USD"}


def test_error_in_the_current_format_waits_for_complete_to_carry_the_stats() -> None:
    stream = sample("tabstack", "run-error-current-format.sse")
    told = fold(raw_events(stream.read_bytes(), "r"), "r")
    assert [(e.type, e.id) for e in told] == [("run.started", "r:0"), ("run.failed", "r:3")]
    data = told[1].data
    assert data["outcome"] == "error" and data["success"] is False
    assert data["error"] == {
        "code": "TASK_FAILED",
        "message": "Login form rejected the credentials",
    }
    assert (data["actions"], data["iterations"], data["duration_ms"]) == (4, 2, 3120)
    assert data["last_url"] == "https://billing.example.com/login"
    assert data["last_title"] == "Sign in"
    assert told[1].created is not None


def test_old_format_error_string_with_code_at_end_of_stream() -> None:
    told = fold(
        sse(("start", {"task": "t", "url": "u"}), ("error", {"error": "boom", "code": "E1"}))
    )
    end = terminal(told)
    assert (end.type, end.id) == ("run.failed", "run_1:end")
    assert end.data["outcome"] == "error"
    assert end.data["error"] == {"code": "E1", "message": "boom"}


def test_aborted_run() -> None:
    told = fold(sse(("task:started", {"task": "t"}), ("task:aborted", {}), ("done", {})))
    end = terminal(told)
    assert (end.type, end.id, end.data["outcome"]) == ("run.failed", "run_1:2", "aborted")


def test_task_completed_without_complete_ends_successfully_at_end_of_stream() -> None:
    told = fold(
        sse(
            ("task:started", {"task": "t"}),
            ("task:completed", {"success": True, "finalAnswer": "42"}),
        )
    )
    end = terminal(told)
    assert (end.type, end.id) == ("run.completed", "run_1:end")
    assert end.data["final_answer"] == "42"


def test_a_stream_that_breaks_off_is_incomplete() -> None:
    told = fold(sse(("start", {"task": "t"}), ("agent:step", {}), ("agent:step", {})))
    end = terminal(told)
    assert (end.type, end.data["outcome"], end.data["steps"]) == ("run.failed", "incomplete", 2)
    assert end.data["error"] is None


def test_complete_with_success_false_and_its_own_error() -> None:
    told = fold(sse(("complete", {"success": False, "error": {"code": "C", "message": "m"}})))
    end = terminal(told)
    assert (end.type, end.data["outcome"], end.data["error"]) == (
        "run.failed",
        "failed",
        {"code": "C", "message": "m"},
    )


def test_final_answer_at_top_level_of_complete_and_duration_from_start_and_end() -> None:
    told = fold(
        sse(
            (
                "complete",
                {
                    "success": True,
                    "finalAnswer": "top",
                    "stats": {"startTime": 1000, "endTime": 3500},
                },
            )
        )
    )
    end = terminal(told)
    assert (end.data["final_answer"], end.data["duration_ms"]) == ("top", 2500)


def test_an_earlier_error_wins_over_a_later_success_claim() -> None:
    told = fold(sse(("error", {"error": "x"}), ("complete", {"success": True})))
    assert terminal(told).type == "run.failed"


def test_nothing_is_told_after_the_ending() -> None:
    story = RunStory("run_1")
    raw = sse(
        ("complete", {"success": True}), ("error", {"error": "late"}), ("start", {}), ("done", {})
    )
    told = [e for event in raw for e in story.feed(event)]
    assert [e.type for e in told] == ["run.completed"]
    assert story.finish() == []


def test_pages_are_distinct_and_the_last_five() -> None:
    urls = ["a", "b", "a", "c", "d", "e", "f", "g"]
    told = fold(sse(*[("browser:navigated", {"title": u.upper(), "url": u}) for u in urls]))
    pages = terminal(told).data["pages"]
    assert [p["url"] for p in pages] == ["c", "d", "e", "f", "g"]
    assert (
        len(fold(sse(*[("browser:navigated", {"url": u}) for u in "abab"]))[-1].data["pages"]) == 2
    )


def test_extracted_data_that_is_not_json_is_kept_as_text() -> None:
    told = fold(sse(("agent:extracted", {"extractedData": "price: 3"})))
    assert terminal(told).data["extracted"] == "price: 3"


def test_unknown_events_are_counted_not_errors() -> None:
    told = fold(sse(("task:metrics", {"x": 1}), ("cdp:endpoint_connected", [1, 2]), ("done", {})))
    end = terminal(told)
    assert (end.data["events"], end.data["outcome"]) == (3, "incomplete")


def test_empty_stream_tells_only_when_the_source_is_known() -> None:
    assert RunStory("r").finish() == []
    [end] = RunStory("r", source="ts").finish()
    assert (end.source, end.type, end.id, end.data["outcome"]) == (
        "ts",
        "run.failed",
        "r:end",
        "incomplete",
    )


NAMES = [
    "start",
    "task:started",
    "agent:step",
    "error",
    "task:aborted",
    "task:completed",
    "complete",
    "done",
    "browser:navigated",
    "mystery",
]
PAYLOADS = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "success": st.booleans(),
            "error": st.one_of(st.text(), st.fixed_dictionaries({"code": st.text()})),
            "finalAnswer": st.one_of(st.none(), st.text(), st.integers()),
            "stats": st.dictionaries(
                st.sampled_from(["actions", "durationMs"]), st.integers() | st.text()
            ),
            "result": st.one_of(st.text(), st.fixed_dictionaries({"finalAnswer": st.text()})),
            "url": st.one_of(st.text(), st.integers()),
            "title": st.text(),
        },
    ),
    st.integers(),
    st.text(),
)


@given(st.lists(st.tuples(st.sampled_from(NAMES), PAYLOADS), max_size=15))
def test_any_stream_tells_at_most_one_start_and_exactly_one_ending_last(
    events: list[tuple[str, Any]],
) -> None:
    told = fold(sse(*events)) if events else fold([])
    if not events:
        assert told == []
        return
    assert sum(e.type == "run.started" for e in told) <= 1
    end = terminal(told)
    assert end.data["outcome"] in {"completed", "error", "aborted", "failed", "incomplete"}
    assert isinstance(end.data["success"], bool)
    json.dumps([e.to_json() for e in told])


def test_progress_is_told_at_a_bounded_rate_with_steps_and_current_page() -> None:
    now = [0.0]
    story = RunStory("run_1", progress_every=5.0, clock=lambda: now[0])
    raw = sse(
        ("task:started", {"task": "Find the price", "url": "https://example.com"}),
        ("agent:step", {"currentIteration": 0}),
        ("browser:navigated", {"title": "Shop", "url": "https://example.com/shop"}),
        ("agent:step", {"currentIteration": 1}),
        ("agent:status", {"message": "Reading the price"}),
        ("complete", {"success": True, "finalAnswer": "$5"}),
    )
    told: list[Event] = []
    for event, at in zip(raw, [0, 1, 2, 3, 6.5, 7], strict=True):
        now[0] = at
        told += story.feed(event)
    kinds = [e.type for e in told]
    assert kinds == ["run.started", "run.progress", "run.progress", "run.completed"]
    first, second = told[1], told[2]
    assert first.id == "run_1:progress:1" and second.id == "run_1:progress:2"
    assert first.data["steps"] == 1 and first.data["last_url"] is None
    assert second.data["steps"] == 2
    assert second.data["last_url"] == "https://example.com/shop"
    assert second.data["status_message"] == "Reading the price"


def test_no_progress_unless_asked() -> None:
    raw = sse(("start", {"task": "t"}), ("agent:step", {}), ("done", {}))
    assert [e.type for e in fold(raw)] == ["run.started", "run.failed"]
