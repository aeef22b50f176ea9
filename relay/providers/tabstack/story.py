"""The story of one Tabstack run: a pure fold of its raw SSE events into two story events.

Raw events (`agent:step`, `browser:navigated`, ...) are noise one by one; `RunStory` counts and
remembers them and tells only `run.started` (at the first `start` or `task:started`), optionally
`run.progress` (steps so far, current page; at most once per `progress_every` seconds, which a
threaded route turns into live updates of the run's one message) and exactly one terminal
event, `run.completed` or `run.failed`, whose data sums the run up (keys listed in `_summary`).

When the terminal event is emitted: the current API sends `error` and *then* `complete` (which
carries the stats) and `done`. So a failure (`error`, `task:aborted`, `task:completed` with
success false) and a success seen in `task:completed` are only remembered; the terminal event is
emitted at the next `complete` or `done`, or by `finish()` at the end of the stream, whichever
comes first, so that the one failure message carries the stats. A `complete` ends the run at
once. A failure seen earlier wins over a later `complete` that claims success. Whatever arrives
after the terminal event is counted but tells nothing new.

Both payload shapes are read: `finalAnswer` at the top of `complete` or in its `result`; `error`
as a string (with an optional top-level `code`) or as `{code, message}`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from relay.event import Event, parse_time

Outcome = Literal["completed", "error", "aborted", "failed", "incomplete"]

MAX_PAGES = 5
_PROGRESS = frozenset({"agent:step", "browser:navigated", "agent:status"})


@dataclass(frozen=True, slots=True)
class _Ending:
    outcome: Outcome
    error: dict[str, str | None] | None


class RunStory:
    """Feed raw events of one run in stream order; `finish()` once the stream has ended.

    `source` names the configured source for story events when no raw event arrived to take it
    from; with neither, an empty stream tells nothing.
    """

    def __init__(
        self,
        run_id: str,
        *,
        source: str = "",
        provider: str = "tabstack",
        progress_every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run_id = run_id
        self.progress_every = progress_every
        self.clock = clock
        self._progress_sent = 0
        self._progress_at: float | None = None
        self.source = source
        self.provider = provider
        self.started = False
        self.ended = False
        self._task: str | None = None
        self._url: str | None = None
        self._events = 0
        self._steps = 0
        self._pages: list[dict[str, str | None]] = []
        self._last_url: str | None = None
        self._last_title: str | None = None
        self._status: str | None = None
        self._plan: str | None = None
        self._extracted: Any = None
        self._final_answer: str | None = None
        self._stats: Mapping[str, Any] = {}
        self._pending: _Ending | None = None
        self._completed_ok = False
        self._last_created: datetime | None = None

    def feed(self, event: Event) -> list[Event]:
        """The story events this raw event produces (usually none)."""
        if not self.source:
            self.source = event.source
        self._events += 1
        self._last_created = event.created or self._last_created
        data = event.data
        name = event.type
        told: list[Event] = []
        if name in ("start", "task:started"):
            self._task = _text(data.get("task")) or self._task
            self._url = _text(data.get("url")) or self._url
            if not self.started and not self.ended:
                self.started = True
                told.append(self._tell("run.started", event, self._identity()))
        elif name == "agent:step":
            self._steps += 1
        elif name == "browser:navigated":
            self._navigated(_text(data.get("title")), _text(data.get("url")))
        elif name == "agent:status":
            self._status = _text(data.get("message")) or self._status
            self._plan = _text(data.get("plan")) or self._plan
        elif name == "agent:extracted":
            self._extracted = _maybe_json(data.get("extractedData"))
        elif name == "task:completed":
            self._answer(data.get("finalAnswer"))
            if data.get("success") is True:
                self._completed_ok = True
            else:
                self._fail(_Ending("failed", _error_of(data)))
        elif name == "task:aborted":
            self._fail(_Ending("aborted", _error_of(data)))
        elif name == "error":
            self._fail(_Ending("error", _error_of(data)))
        elif name == "complete":
            told += self._complete(event)
        elif name == "done":
            told += self._end(event)
        if name in _PROGRESS and self.started and not self.ended:
            told += self._progress(event)
        return told

    def _progress(self, event: Event) -> list[Event]:
        """`run.progress` at most once per `progress_every` seconds (None: never)."""
        if self.progress_every is None:
            return []
        now = self.clock()
        if self._progress_at is not None and now - self._progress_at < self.progress_every:
            return []
        self._progress_at = now
        self._progress_sent += 1
        told = self._tell("run.progress", event, self._snapshot())
        return [replace(told, id=f"{self.run_id}:progress:{self._progress_sent}")]

    def finish(self) -> list[Event]:
        """End of stream: the terminal event unless one was told (`incomplete` if nothing ended)."""
        if self.ended or not self.source:
            return []
        return self._end(None)

    # ---------------------------------------------------------------- folding

    def _navigated(self, title: str | None, url: str | None) -> None:
        self._last_title, self._last_url = title, url
        if url is None and title is None:
            return
        # distinct by URL, most recent visit last, so a loop over two pages shows both once
        self._pages = [p for p in self._pages if p["url"] != url or url is None]
        self._pages.append({"title": title, "url": url})
        self._pages = self._pages[-MAX_PAGES:]

    def _answer(self, value: Any) -> None:
        if value is not None:
            self._final_answer = value if isinstance(value, str) else json.dumps(value)

    def _fail(self, ending: _Ending) -> None:
        # the first failure names the outcome; a later one only fills in a missing error
        if self._pending is None:
            self._pending = ending
        elif self._pending.error is None and ending.error is not None:
            self._pending = _Ending(self._pending.outcome, ending.error)

    def _complete(self, event: Event) -> list[Event]:
        data = event.data
        result = data.get("result")
        self._answer(data.get("finalAnswer"))
        if isinstance(result, Mapping):
            self._answer(result.get("finalAnswer"))
        stats = data.get("stats")
        if isinstance(stats, Mapping):
            self._stats = stats
        if data.get("success") is True:
            self._completed_ok = True
        else:
            error = _error_of(data)
            self._fail(_Ending("failed", error))
        return self._end(event)

    def _end(self, event: Event | None) -> list[Event]:
        if self.ended:
            return []
        self.ended = True
        if self._pending is not None:
            return [self._tell("run.failed", event, self._summary(self._pending))]
        if self._completed_ok:
            return [self._tell("run.completed", event, self._summary(_Ending("completed", None)))]
        return [self._tell("run.failed", event, self._summary(_Ending("incomplete", None)))]

    # ---------------------------------------------------------------- telling

    def _identity(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "task": self._task, "url": self._url}

    def _snapshot(self) -> dict[str, Any]:
        return {
            **self._identity(),
            "steps": self._steps,
            "events": self._events,
            "pages": [dict(p) for p in self._pages],
            "last_url": self._last_url,
            "last_title": self._last_title,
            "status_message": self._status,
            "plan": self._plan,
        }

    def _summary(self, ending: _Ending) -> dict[str, Any]:
        return {
            **self._identity(),
            "success": ending.outcome == "completed",
            "outcome": ending.outcome,
            "final_answer": self._final_answer,
            "error": ending.error,
            "actions": _int(self._stats.get("actions")),
            "iterations": _int(self._stats.get("iterations")),
            "duration_ms": self._duration_ms(),
            "steps": self._steps,
            "events": self._events,
            "pages": [dict(p) for p in self._pages],
            "last_url": self._last_url,
            "last_title": self._last_title,
            "status_message": self._status,
            "plan": self._plan,
            "extracted": self._extracted,
        }

    def _duration_ms(self) -> int | None:
        duration = _int(self._stats.get("durationMs"))
        if duration is not None:
            return duration
        start, end = _int(self._stats.get("startTime")), _int(self._stats.get("endTime"))
        return end - start if start is not None and end is not None and end >= start else None

    def _created(self, trigger: Event | None) -> datetime | None:
        # current-format `complete` has no timestamp of its own but says when the run ended
        if trigger is not None and trigger.created is not None:
            return trigger.created
        if trigger is None or trigger.type in ("complete", "done"):
            return parse_time(self._stats.get("endTime")) or self._last_created
        return self._last_created

    def _tell(self, kind: str, trigger: Event | None, data: dict[str, Any]) -> Event:
        seq_id = trigger.id if trigger is not None else f"{self.run_id}:end"
        return Event(
            source=self.source,
            provider=self.provider,
            id=seq_id,
            type=kind,
            data=data,
            created=self._created(trigger),
            text=_headline(kind, data),
            envelope=dict(trigger.data) if trigger is not None else {},
        )


def _headline(kind: str, data: Mapping[str, Any]) -> str:
    """A plain one-line summary, the fallback when no template renders."""
    task = data.get("task") or data["run_id"]
    if kind == "run.started":
        return f"Tabstack run started: {task}"
    if kind == "run.completed":
        return f"Tabstack run completed: {task}"
    if kind == "run.progress":
        return f"Tabstack run in progress ({data['steps']} steps): {task}"
    error = data.get("error") or {}
    reason = error.get("message") or error.get("code") or data["outcome"]
    return f"Tabstack run failed ({data['outcome']}): {task}: {reason}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return int(value)


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return value
    return value


def _error_of(data: Mapping[str, Any]) -> dict[str, str | None] | None:
    """`{code, message}` from `error: "text"` (+ `code`) or `error: {code, message}`."""
    error = data.get("error")
    if isinstance(error, Mapping):
        code, message = error.get("code"), error.get("message")
    elif error is not None:
        code, message = data.get("code"), error
    else:
        code, message = data.get("code"), data.get("message") or data.get("reason")
    if code is None and message is None:
        return None
    return {
        "code": None if code is None else str(code),
        "message": None if message is None else str(message),
    }
