"""Tabstack: bearer-token check for piped run streams and raw SSE events -> `Event`s.

Tabstack pushes nothing and signs nothing: a run's Server-Sent Events arrive either on relay's
own `POST /automate` call or piped into `/hooks/<source>` by a user, who proves who they are with
`Authorization: Bearer <token>`. Events carry no id, so each gets `{run_id}:{seq}`.
`parse()` takes a whole recorded stream and returns its story (see `relay.tabstack_story`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar

from relay.config import TabstackSource
from relay.errors import MalformedRequest, Unauthorized
from relay.event import Event, parse_time
from relay.providers.base import MAX_JSON_DEPTH, Headers, bearer_ok, depth, lower_keys
from relay.providers.tabstack.sse import SSEDecoder, SSEEventTooLarge
from relay.providers.tabstack.story import RunStory

_SEND_SSE = "a Tabstack source takes the run's stream: send it as Content-Type: text/event-stream"


class TabstackProvider:
    kind: ClassVar[str] = "tabstack"

    def __init__(
        self, source: str, token: str | None, max_json_depth: int = MAX_JSON_DEPTH
    ) -> None:
        self.source = source
        self._token = token or None
        self.max_json_depth = max_json_depth

    @classmethod
    def from_config(
        cls, name: str, source: TabstackSource, max_json_depth: int
    ) -> TabstackProvider:
        token = source.token.get_secret_value() if source.token else None
        return cls(name, token, max_json_depth=max_json_depth)

    def verify(self, headers: Headers, body: bytes, now: float) -> None:
        if self._token is None:
            raise Unauthorized(f"source '{self.source}' has no token configured")
        if not bearer_ok(lower_keys(headers), self._token):
            raise Unauthorized("missing or wrong Authorization: Bearer token")

    def event_from_sse(self, run_id: str, seq: int, name: str, data: str) -> Event:
        """One raw SSE event as an Event; its `data` is the JSON payload plus `run_id`."""
        value = _decode(data, self.max_json_depth)
        payload: dict[str, Any]
        if isinstance(value, _Raw):
            payload = {"raw": value.text}
        elif isinstance(value, dict):
            payload = dict(value)
        else:
            payload = {"value": value}
        payload["run_id"] = run_id
        return Event(
            source=self.source,
            provider=self.kind,
            id=f"{run_id}:{seq}",
            type=name or "message",
            data=payload,
            created=parse_time(payload.get("timestamp")),
            envelope={"event": name or "message", "data": data},
        )

    def parse(self, headers: Headers, body: bytes) -> list[Event]:
        """A whole recorded stream -> its story events (run id from `X-Relay-Run-Id` or the body).

        Deriving the run id from the body's hash makes a re-sent recording a duplicate.
        """
        h = lower_keys(headers)
        media = h.get("content-type", "").partition(";")[0].strip().lower()
        if media and media != "text/event-stream":
            raise MalformedRequest(_SEND_SSE)
        run_id = h.get("x-relay-run-id", "").strip()[:100]
        if not run_id:
            run_id = "run_" + hashlib.sha256(body).hexdigest()[:16]
        story = RunStory(run_id, source=self.source, provider=self.kind)
        told: list[Event] = []
        try:
            # the closing blank line lets a recording that lacks one still end its last event
            raw = SSEDecoder().feed(body + b"\n\n")
        except SSEEventTooLarge as exc:
            raise MalformedRequest(exc.detail) from None
        for seq, (name, data, _last_id) in enumerate(raw):
            told += story.feed(self.event_from_sse(run_id, seq, name, data))
        if not raw:
            raise MalformedRequest(f"no Server-Sent Events in the body; {_SEND_SSE}")
        return told + story.finish()


class _Raw:
    """Marks data that is not JSON, so it is kept verbatim as `{"raw": text}`."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _decode(data: str, max_depth: int) -> Any:
    if not data.strip():
        # events Tabstack documents as having "no data payload"
        return {}
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return _Raw(data)
    # nested too deeply for anything downstream to walk: kept as text, like data that is not JSON
    return _Raw(data) if depth(value, max_depth) > max_depth else value
