"""The HTTP edge: routes, status codes and JSON error bodies, nothing more.

`POST /hooks/{source}`, the acknowledgement path, is `relay.hooks` (a bare ASGI app, dispatched
to before any framework layer); Starlette serves the other endpoints. A `Request` never travels
past this module: handlers read headers and the body (bounded), hand bytes to the provider and
events to the pipeline, and map relay's error tree to HTTP in one exception handler. Starlette's
own refusals (`404` for a path no route has, `405` for a method a route does not take) and any
unexpected exception (`500`) get the same JSON body, and a path is never redirected (Starlette
would redirect `/hooks/anchor/` to an address built from the client's `Host` header). Lifespan
opens the store, starts the router and the delivery worker and, on SIGTERM, stops intake and
lets in-flight deliveries finish up to a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from relay import heap
from relay.config import LoadedConfig, TabstackSource, load_config, secret_values
from relay.deliver import Sender
from relay.errors import (
    ConfigError,
    IngestError,
    MalformedRequest,
    UnknownSource,
    UnsupportedMediaType,
    error_body,
)
from relay.hooks import Hooks, is_hook, media_type, read_body, stream_limits
from relay.httpproto import HEAD_TOO_LARGE_DETAIL, MAX_HEAD_BYTES, head_size
from relay.logs import protect
from relay.metrics import CONTENT_TYPE, UNKNOWN_SOURCE, Metrics
from relay.pipeline import Pipeline
from relay.providers.base import json_object
from relay.providers.tabstack import TabstackProvider
from relay.runs import RunStartFailed, new_run_id, start_run
from relay.runtime import Runtime
from relay.stores import Store
from relay.watch import watch
from relay.worker import Worker

log = logging.getLogger("relay.http")


@dataclass
class Services:
    """Everything the HTTP edge needs, built by the server (or a test) and injected."""

    runtime: Runtime
    store: Store
    worker: Worker
    admin_token: str | None = None
    clock: Callable[[], float] = time.time
    shutdown_grace: float = 20.0
    http: httpx.AsyncClient | None = None
    # builds the runtime and the senders of a newly loaded config (set by the server)
    rebuild: Callable[[LoadedConfig], tuple[Runtime, dict[str, Sender]]] | None = None
    metrics: Metrics = field(default_factory=Metrics)
    pipeline: Pipeline = field(init=False)
    runs: set[asyncio.Task[Any]] = field(default_factory=set)
    accepting: bool = True
    generation: int = 1

    def __post_init__(self) -> None:
        self.worker.metrics = self.metrics
        self.pipeline = Pipeline(
            self.runtime,
            self.store,
            clock=self.clock,
            on_enqueued=self.worker.wake,
            metrics=self.metrics,
        )
        self.metrics.generation.set(self.generation)
        self._reloading = asyncio.Lock()
        self.pipeline.on_settled = self.settle

    def settle(self) -> None:
        """Compile the templates in force and take every live object out of the collector's
        full passes (at start-up, and once a reload's old config is no longer needed)."""
        self.runtime.renderer.warm()
        heap.settle()

    def source_label(self, name: str) -> str:
        """The `source` label of a request to `/hooks/{name}`: the name, or `_unknown`."""
        return name if name in self.runtime.providers else UNKNOWN_SOURCE

    def head_refused(self, path: str) -> None:
        """Count a request refused for its oversized head (by the app or the protocol)."""
        if path.startswith("/hooks/"):
            label = self.source_label(path.removeprefix("/hooks/"))
            self.metrics.received.labels(label).inc()
            self.metrics.rejected.labels(label, "headers_too_large").inc()

    async def reload(self) -> None:
        """Load the config file and templates again and swap them in atomically.

        Raises ConfigError (the old config keeps serving) when the new one is invalid; logs its
        public form."""
        async with self._reloading:
            path = self.runtime.loaded.path
            try:
                loaded = await asyncio.to_thread(load_config, path)
                protect(secret_values(loaded.config))
                if self.rebuild is None:
                    raise ConfigError(["reload is not available in this process"])
                runtime, senders = await asyncio.to_thread(self.rebuild, loaded)
                accepted_until = await self.store.last_seq()
            except Exception as exc:  # never half-applied, never a 500: the old one serves
                rejected = exc if isinstance(exc, ConfigError) else ConfigError(
                    # the class only: an exception's message may quote what it failed on
                    [f"{path}: the new config cannot be used ({type(exc).__name__}); "
                     "`relay check` shows why"]
                )  # fmt: skip
                self.metrics.reloads.labels("rejected").inc()
                log.error(
                    "new config rejected; the previous one keeps serving",
                    # the public form: a value typed into the wrong field may be a secret
                    extra={"problems": rejected.public, "config": self.runtime.digest},
                )
                raise rejected from None
            heap.unsettle()  # the old config can go once no waiting event needs it
            self.runtime = runtime
            self.pipeline.use(runtime, accepted_until)
            self.worker.senders = dict(senders)
            self.worker.pacer.rate = runtime.config.pacing.rate
            self.worker.pacer.burst = runtime.config.pacing.burst
            self.generation += 1
            self.metrics.generation.set(self.generation)
            self.metrics.reloads.labels("ok").inc()
            log.info(
                "config reloaded",
                extra={"generation": self.generation, "config": runtime.digest},
            )


def error_response(
    status: int,
    error: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    more: Mapping[str, Any] | None = None,
) -> Response:
    body = error_body(error, detail, more)
    return Response(body, status, headers=headers, media_type="application/json")


def _http_error(exc: HTTPException) -> Response:
    """Starlette's refusals: no route has the path (`404`), or the route takes other methods
    (`405`, with the `Allow` Starlette sets). The detail never quotes the request."""
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return error_response(
            405, "method_not_allowed", f"this endpoint takes {allowed}", exc.headers
        )
    if exc.status_code == 404:
        return error_response(404, "not_found", "no endpoint at this path", exc.headers)
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    return error_response(exc.status_code, code, exc.detail, exc.headers)


def _admin(services: Services, request: Request) -> Response | None:
    """None when the request carries the admin token; else the answer to give."""
    token = services.admin_token
    if not token:
        return error_response(404, "admin_disabled", "set RELAY_ADMIN_TOKEN to enable this")
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return error_response(401, "unauthorized", "missing or wrong bearer token")
    return None


class HeadLimit:
    """Refuses a request whose line and headers exceed `MAX_HEAD_BYTES`: `431`, JSON body.

    The protocol (`relay.httpproto`) refuses a head that is still incomplete past the bound; one
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

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _http_error(exc)

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
        services.runs.add(task)
        task.add_done_callback(services.runs.discard)
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
        stop = asyncio.Event()
        await services.store.open()
        released = await services.store.release_orphans(services.clock())
        if released:
            log.warning(
                "re-queued deliveries interrupted by the last shutdown", extra={"count": released}
            )
        owns_http = services.http is None
        if owns_http:
            services.http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None))
        _on_sighup(services)
        services.settle()
        # the heartbeat outlives the worker: the sends that drain at shutdown still need it
        heartbeat, beating, beats_stop = services.worker.heartbeat, None, asyncio.Event()
        if heartbeat is not None:
            await heartbeat.renew()  # before the worker's first claim
            beating = asyncio.create_task(heartbeat.run(beats_stop), name="relay-heartbeat")
        router = asyncio.create_task(services.pipeline.run(stop), name="relay-router")
        worker = asyncio.create_task(services.worker.run(stop), name="relay-worker")
        pruner = asyncio.create_task(_prune_forever(services, stop), name="relay-pruner")
        watcher = asyncio.create_task(
            watch(
                lambda: services.runtime.loaded,
                lambda: services.runtime.config.server.watch,
                services.reload,
                stop,
            ),
            name="relay-watcher",
        )
        try:
            yield
        finally:
            services.accepting = False
            for run in list(services.runs):
                run.cancel()
            stop.set()
            await asyncio.gather(router, worker, pruner, watcher, return_exceptions=True)
            drained = await services.worker.drain(services.shutdown_grace)
            if not drained:
                log.warning(
                    "shutdown deadline reached with deliveries in flight; they will be retried"
                )
            beats_stop.set()
            if beating is not None:
                await asyncio.gather(beating, return_exceptions=True)
            if owns_http and services.http is not None:
                await services.http.aclose()
            await services.store.close()

    rest = Starlette(
        routes=[
            Route("/hooks/{source}", hooks, methods=["POST"]),
            Route("/runs/{source}", start_tabstack_run, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/admin/reload", admin_reload, methods=["POST"]),
        ],
        exception_handlers={
            IngestError: ingest_error,
            HTTPException: http_error,
            Exception: internal_error,
        },
        middleware=[Middleware(HeadLimit, refused=services.head_refused)],
        lifespan=lifespan,
    )
    # a trailing slash is a different path (404), never a redirect to the client's Host header
    rest.router.redirect_slashes = False
    return RelayApp(hooks, rest)


def _on_sighup(services: Services) -> None:
    """SIGHUP reloads the config, like POST /admin/reload (only where signals can be caught)."""

    async def reload() -> None:
        with contextlib.suppress(ConfigError):  # logged; the old config keeps serving
            await services.reload()

    def handler() -> None:
        task = asyncio.ensure_future(reload())
        services.runs.add(task)
        task.add_done_callback(services.runs.discard)

    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, handler)


async def _prune_forever(services: Services, stop: asyncio.Event) -> None:
    store_cfg = services.runtime.config.store
    while not stop.is_set():
        try:
            await services.store.prune(
                services.clock(), store_cfg.dedup_ttl, keep_sent=store_cfg.dedup_ttl
            )
        except Exception:
            log.exception("pruning the store failed; will try again")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=600)
