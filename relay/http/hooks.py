"""`POST /hooks/{source}`: the acknowledgement path of the HTTP edge, as a bare ASGI app.

This is the one request relay must answer fast under load, so it runs without framework layers
(Starlette serves every other endpoint, `relay.http.app`): read the body within its bound, let the
provider verify and parse it, hand the events to the pipeline, which stores them, and answer
`202` (or `200` for a duplicate). A Tabstack source takes a whole run's event stream instead.
Relay's errors become their status and JSON body here; anything else is a logged `500` with a
JSON body. Nothing of the ASGI scope travels further than this module.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from urllib.parse import parse_qs

from starlette.types import Message, Receive, Scope, Send

from relay.config import TabstackSource
from relay.errors import (
    IngestError,
    MalformedRequest,
    PayloadTooLarge,
    UnknownSource,
    UnsupportedMediaType,
    error_body,
)
from relay.http.protocol import HEAD_TOO_LARGE_DETAIL, MAX_HEAD_BYTES, head_size
from relay.http.streams import StreamLimits, consume_stream, new_run_id
from relay.ops.services import Services
from relay.providers.base import LowerCased
from relay.providers.tabstack import TabstackProvider
from relay.records import Acceptance
from relay.runtime import Runtime

log = logging.getLogger("relay.http")

PREFIX = "/hooks/"
_RUN_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
_JSON = [(b"content-type", b"application/json")]


def is_hook(scope: Scope) -> bool:
    """`POST /hooks/<one path segment>`: what `Hooks` answers."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return False
    path: str = scope["path"]
    return path.startswith(PREFIX) and len(path) > len(PREFIX) and "/" not in path[len(PREFIX) :]


async def respond(send: Send, status: int, body: bytes) -> None:
    headers = [*_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Hooks:
    """The ASGI app of `POST /hooks/{source}` (see `is_hook`)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = self.services
        if head_size(scope) > MAX_HEAD_BYTES:
            services.head_refused(scope["path"])
            await respond(send, 431, error_body("headers_too_large", HEAD_TOO_LARGE_DETAIL))
            return
        name = scope["path"][len(PREFIX) :]
        label = services.source_label(name)
        metrics = services.metrics
        metrics.count_received(label)
        try:
            status, body = await self._answer(name, label, scope, receive)
        except IngestError as exc:
            metrics.rejected.labels(label, exc.code).inc()
            status, body = exc.status, error_body(exc.code, exc.detail)
        except Exception:  # a bug: the sender retries, the traceback is in the logs
            log.exception("request failed", extra={"source": label})
            status, body = 500, error_body("internal", "relay failed on this request; retry")
        await respond(send, status, body)

    async def _answer(
        self, name: str, label: str, scope: Scope, receive: Receive
    ) -> tuple[int, bytes]:
        services = self.services
        if not services.accepting:
            services.metrics.rejected.labels(label, "shutting_down").inc()
            body = error_body("shutting_down", "relay is restarting; retry shortly")
            return 503, body
        runtime = services.runtime
        provider = runtime.providers.get(name)
        if provider is None:
            raise UnknownSource(f"no source named '{name}' is configured")
        # ASGI gives header names in lower case
        headers = LowerCased(
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
        )
        media = media_type(headers)
        if isinstance(provider, TabstackProvider):
            return await self._stream(name, provider, headers, media, scope, receive)
        if media != "application/json" and not media.endswith("+json"):
            raise UnsupportedMediaType(
                f"Content-Type must be application/json, got '{media or 'none'}'"
            )
        body = await read_body(receive, headers, runtime.config.server.max_body_bytes)
        provider.verify(headers, body, services.clock())
        events = provider.parse(headers, body)
        results = [await services.pipeline.accept(e) for e in events]
        ids = json.dumps([e.id for e in events]).encode()
        if results and all(r is Acceptance.DUPLICATE for r in results):
            return 200, b'{"status": "duplicate", "ids": ' + ids + b"}"
        return 202, b'{"status": "accepted", "ids": ' + ids + b"}"

    async def _stream(
        self,
        name: str,
        provider: TabstackProvider,
        headers: dict[str, str],
        media: str,
        scope: Scope,
        receive: Receive,
    ) -> tuple[int, bytes]:
        if media != "text/event-stream":
            raise UnsupportedMediaType(
                "a Tabstack source takes the run's stream: Content-Type must be text/event-stream"
            )
        services = self.services
        provider.verify(headers, b"", services.clock())
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        run_id = headers.get("x-relay-run-id") or (query.get("run_id") or [""])[0] or new_run_id()
        if not _RUN_ID.match(run_id):
            raise MalformedRequest("run id must be 1-100 characters of A-Z a-z 0-9 _ . : -")
        summary = await consume_stream(
            chunks(receive),
            run_id=run_id,
            provider=provider,
            pipeline=services.pipeline,
            limits=stream_limits(services.runtime, name),
        )
        answer = {"status": "accepted", "run_id": run_id, "events": summary.raw_events}
        return 202, json.dumps(answer).encode()


def media_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


async def chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The request body as it arrives; it simply ends if the client goes away."""
    while True:
        message: Message = await receive()
        if message["type"] != "http.request":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def read_body(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    first: Message = await receive()
    if first["type"] != "http.request":
        return b""
    body: bytes = first.get("body", b"")
    if len(body) > limit:
        raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
    if not first.get("more_body", False):
        return body  # the usual case: the whole body in one message
    async for chunk in chunks(receive):
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
    return body


def stream_limits(runtime: Runtime, name: str) -> StreamLimits:
    """The bounds of a Tabstack source's streams (the defaults for any other source)."""
    source = runtime.config.sources.get(name)
    if isinstance(source, TabstackSource):
        return StreamLimits(
            max_bytes=source.max_stream_bytes,
            max_seconds=source.max_stream_seconds,
            progress_every=source.progress_interval,
        )
    return StreamLimits()
