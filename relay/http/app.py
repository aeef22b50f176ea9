"""The HTTP edge: routes, status codes and JSON error bodies, nothing more.

`POST /hooks/{source}`, the acknowledgement path, is `relay.http.hooks` (a bare ASGI app,
dispatched to before any framework layer); Starlette serves the other endpoints. A `Request`
never travels past this package: handlers read headers and the body (bounded), hand bytes to
the provider and events to the pipeline, and map relay's error tree to HTTP in one exception
handler. Starlette's own refusals (`404` for a path no route has, `405` for a method a route
does not take) and any unexpected exception (`500`) get the same JSON body, and a path is never
redirected (Starlette would redirect `/hooks/anchor/` to an address built from the client's
`Host` header). The app's lifespan is the running relay's (`Services.running`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from relay.config import TabstackSource
from relay.console import console_routes
from relay.errors import (
    ConfigError,
    IngestError,
    MalformedRequest,
    UnknownSource,
    UnsupportedMediaType,
)
from relay.http.admin import admin_refusal as _admin
from relay.http.answers import error_response, http_error
from relay.http.api import api_routes
from relay.http.hooks import Hooks, is_hook, media_type, read_body, stream_limits
from relay.http.interactions import interaction_routes
from relay.http.protocol import HEAD_TOO_LARGE_DETAIL, MAX_HEAD_BYTES, head_size
from relay.http.silences import silence_routes
from relay.http.streams import RunStartFailed, new_run_id, start_run
from relay.metrics import CONTENT_TYPE
from relay.ops.services import Services
from relay.providers.base import json_object
from relay.providers.tabstack import TabstackProvider

log = logging.getLogger("relay.http")


class HeadLimit:
    """Refuses a request whose line and headers exceed `MAX_HEAD_BYTES`: `431`, JSON body.

    The protocol (`relay.http.protocol`) refuses a head that is still incomplete past the bound; one
    that arrived whole in a single read is parsed first. This makes the bound exact, before any
    handler runs."""

    def __init__(self, app: ASGIApp, refused: Callable[[str], None]) -> None:
        self.app = app
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and head_size(scope) > MAX_HEAD_BYTES:
            self.refused(str(scope.get("path", "")))
            answer = error_response(431, "headers_too_large", HEAD_TOO_LARGE_DETAIL)
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)


class RelayApp:
    """The whole HTTP edge: the acknowledgement path first, Starlette for everything else."""

    def __init__(self, hooks: Hooks, rest: Starlette) -> None:
        self.hooks = hooks
        self.rest = rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if is_hook(scope):
            await self.hooks(scope, receive, send)
        else:
            await self.rest(scope, receive, send)


def build_app(services: Services) -> RelayApp:
    hooks = Hooks(services)

    def source_label(request: Request) -> str:
        return services.source_label(request.path_params.get("source", ""))

    async def ingest_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, IngestError)
        if request.url.path.startswith("/hooks/"):
            services.metrics.rejected.labels(source_label(request), exc.code).inc()
        return error_response(exc.status, exc.code, exc.detail)

    async def starlette_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return http_error(exc)

    async def internal_error(_request: Request, _exc: Exception) -> Response:
        # Starlette logs nothing itself: uvicorn logs the traceback once this answer is sent
        return error_response(500, "internal", "relay failed on this request; retry")

    async def start_tabstack_run(request: Request) -> Response:
        refused = _admin(services, request)
        if refused is not None:
            return refused
        name = request.path_params["source"]
        source = services.runtime.config.sources.get(name)
        provider = services.runtime.providers.get(name)
        if not isinstance(source, TabstackSource) or not isinstance(provider, TabstackProvider):
            raise UnknownSource(f"no Tabstack source named '{name}' is configured")
        if source.api_key is None:
            raise MalformedRequest(f"source '{name}' has no api_key (set TABSTACK_API_KEY)")
        headers = dict(request.headers)  # names are lower case already
        if media_type(headers) != "application/json":
            raise UnsupportedMediaType("Content-Type must be application/json")
        server = services.runtime.config.server
        body = await read_body(request.receive, headers, server.max_body_bytes)
        payload = json_object(body, server.max_json_depth)
        run_id = new_run_id()
        assert services.http is not None
        try:
            task = await start_run(
                client=services.http,
                base_url=source.base_url,
                api_key=source.api_key.get_secret_value(),
                request=payload,
                run_id=run_id,
                provider=provider,
                pipeline=services.pipeline,
                limits=stream_limits(services.runtime, name),
            )
        except RunStartFailed as exc:
            return error_response(
                502, "tabstack_refused", f"Tabstack answered {exc.status}: {exc.detail}"
            )
        except httpx.HTTPError as exc:
            return error_response(502, "tabstack_unreachable", type(exc).__name__)
        services.keep(task)
        return JSONResponse({"run_id": run_id}, status_code=202)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        state = {"config": services.runtime.digest, "generation": services.generation}
        if services.accepting and await services.store.ping():
            return JSONResponse({"status": "ready", **state})
        why = "the store does not answer" if services.accepting else "relay is shutting down"
        # an error answer like any other, with the config it would serve
        return error_response(503, "not_ready", why, more={"status": "not_ready", **state})

    async def metrics(_request: Request) -> Response:
        try:
            services.metrics.observe_queue(await services.store.stats(), services.clock())
            services.metrics.observe_inbox(await services.store.inbox_stats(), services.clock())
        except Exception:  # the counters are still worth serving when the store is down
            log.exception("could not read outbox statistics for /metrics")
        return Response(services.metrics.exposition(), media_type=CONTENT_TYPE)

    async def admin_reload(request: Request) -> Response:
        refused = _admin(services, request)
        if refused is not None:
            return refused
        try:
            await services.reload()
        except ConfigError as exc:
            # paths and what was expected, never a value: `relay check` shows those
            return error_response(422, "invalid_config", "\n".join(exc.public))
        body = {"generation": services.generation, "config": services.runtime.digest}
        return JSONResponse(body)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with services.running():
            yield

    rest = Starlette(
        routes=[
            Route("/hooks/{source}", hooks, methods=["POST"]),
            Route("/runs/{source}", start_tabstack_run, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/admin/reload", admin_reload, methods=["POST"]),
            *api_routes(services),
            *silence_routes(services),
            *interaction_routes(services),
            *console_routes(services),  # none without RELAY_ADMIN_TOKEN
        ],
        exception_handlers={
            IngestError: ingest_error,
            HTTPException: starlette_error,
            Exception: internal_error,
        },
        middleware=[Middleware(HeadLimit, refused=services.head_refused)],
        lifespan=lifespan,
    )
    # a trailing slash is a different path (404), never a redirect to the client's Host header
    rest.router.redirect_slashes = False
    return RelayApp(hooks, rest)
