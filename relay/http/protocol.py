"""The HTTP/1.1 protocol relay serves with: uvicorn's httptools parser, with a bound on the head
and relay's JSON body on the answers uvicorn would give itself.

httptools (llhttp, in C) parses a request several times faster than h11, but it buffers a
request line and headers of any size: a client sending an endless header would grow relay's
memory without limit. `BoundedHttpToolsProtocol` counts the bytes received while a request's
head is still incomplete and, past `MAX_HEAD_BYTES`, answers `431` (the same JSON body as the
app's own check) and closes the connection, having buffered at most one read beyond the bound.
A complete head that is too large is refused by the app (`relay.http.app.HeadLimit`), exactly.

uvicorn answers two things before any app runs, in `text/plain`: a request llhttp cannot parse
(`400`) and a request beyond `limit_concurrency` (`503`). The subclass answers both with
relay's JSON error body instead (`send_400_response`; the concurrency check, taken over in
`on_headers_complete`). What uvicorn would still answer itself: a `500` for an exception that
escapes the app before it starts its answer, which relay's app never lets happen (the
acknowledgement path and Starlette's error handler both answer `500` in JSON).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from relay.errors import error_body

MAX_HEAD_BYTES = 64 * 1024

HEAD_TOO_LARGE_DETAIL = f"request line and headers exceed {MAX_HEAD_BYTES} bytes"


def _closing_answer(status_line: bytes, code: str, detail: str) -> tuple[bytes, bytes]:
    """The status line and the rest of an answer that ends the connection (its JSON body last);
    uvicorn's default headers (`date`) go between the two."""
    body = error_body(code, detail)
    rest = (
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + body
    )
    return status_line, rest


_HEAD_TOO_LARGE = _closing_answer(
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n", "headers_too_large", HEAD_TOO_LARGE_DETAIL
)
_INVALID = _closing_answer(
    b"HTTP/1.1 400 Bad Request\r\n", "malformed", "not a valid HTTP/1.1 request"
)
_OVERLOADED_BODY = error_body("overloaded", "relay has too many requests open; retry shortly")
_OVERLOADED_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_OVERLOADED_BODY)).encode()),
    (b"connection", b"close"),
]


async def _overloaded(scope: Scope, receive: Receive, send: Send) -> None:
    """The app of a request beyond `limit_concurrency`: `503`, and the connection is closed."""
    await send({"type": "http.response.start", "status": 503, "headers": _OVERLOADED_HEADERS})
    await send({"type": "http.response.body", "body": _OVERLOADED_BODY})


def head_size(scope: Scope) -> int:
    """The size of a request's line and headers as HTTP/1.1 sent them (near enough)."""
    size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
    return size + sum(len(name) + len(value) + 4 for name, value in scope["headers"])


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that refuses a request head larger than `MAX_HEAD_BYTES`
    and gives its own refusals relay's JSON error body.

    `refused` is told the path of each request refused here for its head (for the metrics)."""

    head_limit = MAX_HEAD_BYTES
    refused: Callable[[str], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # the next bytes belong to a request line or headers
        self._head_bytes = 0
        # uvicorn's own check would answer in text/plain: this class makes it instead
        self._concurrency = self.limit_concurrency
        self.limit_concurrency = None
        self._app = self.app

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        # uvicorn's test, the same numbers: the app of this request is chosen here
        limit = self._concurrency
        over = limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit)
        if over:
            self.logger.warning("Exceeded concurrency limit.")
        self.app = _overloaded if over else self._app
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0

    def _unsupported_upgrade_warning(self) -> None:
        """Nothing to log: relay serves no WebSocket (`ws="none"`) and answers a request with an
        `Upgrade` header as plain HTTP; uvicorn's advice to install a WebSocket library would
        mislead, on every such request."""

    def send_400_response(self, msg: str) -> None:
        """A request llhttp could not parse (uvicorn logged `msg`): `400`, JSON, closed."""
        self._close_with(_INVALID)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # still inside a head after this read, and past the bound: refuse, stop reading
        over = self._in_head and self._head_bytes > self.head_limit
        if over and self.transport is not None and not self.transport.is_closing():
            self._close_with(_HEAD_TOO_LARGE)
            if self.refused is not None:
                url = getattr(self, "url", b"") or b""
                self.refused(url.split(b"?", 1)[0].decode("latin-1"))

    def _close_with(self, answer: tuple[bytes, bytes]) -> None:
        status_line, rest = answer
        defaults = b"".join(
            name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
        )
        self.transport.write(status_line + defaults + rest)
        self.transport.close()


def bounded_protocol(refused: Callable[[str], None]) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for uvicorn, reporting each request it refuses to `refused`."""
    return type(
        "RelayHttpProtocol", (BoundedHttpToolsProtocol,), {"refused": staticmethod(refused)}
    )
