"""The HTTP/1.1 protocol relay serves with: uvicorn's httptools parser, with a bound on the head.

httptools (llhttp, in C) parses a request several times faster than h11, but it buffers a
request line and headers of any size: a client sending an endless header would grow relay's
memory without limit. `BoundedHttpToolsProtocol` counts the bytes received while a request's
head is still incomplete and, past `MAX_HEAD_BYTES`, answers `431` (the same JSON body as the
app's own check) and closes the connection, having buffered at most one read beyond the bound.
A complete head that is too large is refused by the app (`relay.http.app.HeadLimit`), exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import Scope
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from relay.http.answers import error_body

MAX_HEAD_BYTES = 64 * 1024

HEAD_TOO_LARGE_DETAIL = f"request line and headers exceed {MAX_HEAD_BYTES} bytes"
_BODY = error_body("headers_too_large", HEAD_TOO_LARGE_DETAIL)
_RESPONSE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _BODY
)


def head_size(scope: Scope) -> int:
    """The size of a request's line and headers as HTTP/1.1 sent them (near enough)."""
    size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
    return size + sum(len(name) + len(value) + 4 for name, value in scope["headers"])


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that refuses a request head larger than `MAX_HEAD_BYTES`.

    `refused` is told the path of each request refused here (for the metrics)."""

    head_limit = MAX_HEAD_BYTES
    refused: Callable[[str], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # the next bytes belong to a request line or headers
        self._head_bytes = 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # still inside a head after this read, and past the bound: refuse, stop reading
        over = self._in_head and self._head_bytes > self.head_limit
        if over and self.transport is not None and not self.transport.is_closing():
            self.transport.write(_RESPONSE)
            self.transport.close()
            if self.refused is not None:
                url = getattr(self, "url", b"") or b""
                self.refused(url.split(b"?", 1)[0].decode("latin-1"))


def bounded_protocol(refused: Callable[[str], None]) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for uvicorn, reporting each request it refuses to `refused`."""
    return type(
        "RelayHttpProtocol", (BoundedHttpToolsProtocol,), {"refused": staticmethod(refused)}
    )
