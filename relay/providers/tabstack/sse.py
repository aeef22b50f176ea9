"""An incremental Server-Sent Events decoder (WHATWG HTML, "event stream interpretation").

Feed it byte chunks split anywhere (inside a UTF-8 character, between `\\r` and `\\n`) and it
returns each event as soon as its terminating blank line has arrived, as
`(event_name, data, last_event_id)`. Pure: no I/O, so the same object serves Starlette's
`request.stream()`, httpx's `aiter_bytes()` and a file read in one piece.

One deliberate departure from the spec: an event that names itself (`event: task:aborted`) but
has no `data:` line is still dispatched, with data `""`. Browsers drop such events, but Tabstack
documents several events as having "no data payload", and losing `task:aborted` would lose the
end of a run. `SSEDecoder(strict=True)` restores the spec's behaviour.

A stream that ends without a final blank line loses its last, incomplete event, as the spec says.
"""

from __future__ import annotations

import codecs
import re

from relay.errors import PayloadTooLarge

SSEEvent = tuple[str, str, str]

DEFAULT_MAX_EVENT_SIZE = 4 * 1024 * 1024
_EOL = re.compile(r"\r\n|\r|\n")


class SSEEventTooLarge(PayloadTooLarge):
    """One event (or one unterminated line) outgrew the decoder's `max_event_size`."""


class SSEDecoder:
    """Stateful decoder of one stream; create one per stream."""

    def __init__(
        self, max_event_size: int = DEFAULT_MAX_EVENT_SIZE, *, strict: bool = False
    ) -> None:
        self.max_event_size = max_event_size
        self.strict = strict
        self.last_event_id = ""
        self.retry_ms: int | None = None
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._parts: list[str] = []
        self._pending = 0
        self._at_start = True
        self._skip_lf = False
        self._event = ""
        self._data: list[str] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode one chunk; the events it completed, in order."""
        text = self._text.decode(chunk)
        if self._at_start and text:
            self._at_start = False
            text = text.removeprefix("\ufeff")
        if self._skip_lf and text:
            # the previous chunk ended in `\r`; a `\n` opening this one belongs to that line end
            self._skip_lf = False
            text = text.removeprefix("\n")
        if "\n" not in text and "\r" not in text:
            # no line ends yet: keep the pieces, join once the line is complete (no O(n^2))
            if text:
                self._parts.append(text)
                self._pending += len(text)
                self._check(self._size + self._pending)
            return []
        buf = "".join(self._parts) + text
        events: list[SSEEvent] = []
        pos = 0
        for match in _EOL.finditer(buf):
            event = self._line(buf[pos : match.start()])
            if event is not None:
                events.append(event)
            pos = match.end()
        # a `\r` closing the buffer may be the first half of `\r\n` split across chunks
        self._skip_lf = buf.endswith("\r")
        rest = buf[pos:]
        self._parts = [rest] if rest else []
        self._pending = len(rest)
        self._check(self._size + self._pending)
        return events

    def _check(self, size: int) -> None:
        if size > self.max_event_size:
            raise SSEEventTooLarge(
                f"a Server-Sent Event exceeded the limit of {self.max_event_size} characters"
            )

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
            self._size += len(value) + 1
            self._check(self._size)
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        data, event = self._data, self._event
        self._data, self._event, self._size = [], "", 0
        if not data and (self.strict or not event):
            return None
        return (event or "message", "\n".join(data), self.last_event_id)
