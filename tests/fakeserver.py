"""What every fake chat service under tests/ shares: a real HTTP server on 127.0.0.1 (uvicorn in
a thread, or in the main thread for a standalone fake), scripted steps queued per target, a
thread-safe record of requests, and the ways a fake can refuse to answer (hang, drop the socket).

Each fake (fakeslack.py, fakediscord.py, ...) subclasses `FakeServer`, builds its Starlette
`app` in its constructor, and keeps only what its service makes different: routes, answers,
limits and which steps it knows (`STEP`, listed in its own module docstring).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Generic, Self, TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive

RecordT = TypeVar("RecordT")
ItemT = TypeVar("ItemT")


async def wait_disconnect(receive: Receive) -> None:
    """Until the client has closed the connection (or it was closed under it)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class FakeServer(Generic[RecordT]):
    """A fake service on a real socket. Use as a context manager or call start()/stop();
    `serve_forever()` runs it in the calling thread (a standalone fake for crash tests)."""

    # the scripted steps this fake knows; by default none (every step is refused)
    STEP: re.Pattern[str] = re.compile(r"(?!)")

    app: Starlette

    def __init__(self, *, port: int = 0, hang_seconds: float = 35.0) -> None:
        self.hang_seconds = hang_seconds
        self._port = port
        self._lock = threading.Lock()
        self._requests: list[RecordT] = []
        self._scripts: dict[str, deque[str]] = defaultdict(deque)
        self._recent: dict[str, deque[float]] = defaultdict(deque)  # for `_window_full`
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self._port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="h11",
            timeout_graceful_shutdown=2,
        )

    def start(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self._port = sock.getsockname()[1]
        name = type(self).__name__
        self._server = uvicorn.Server(self._config())
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [sock]},
            name=f"{name.lower()}:{self._port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def serve_forever(self) -> None:
        """Run in the calling (main) thread; uvicorn handles SIGINT/SIGTERM."""
        self._server = uvicorn.Server(self._config())
        self._server.run()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------- test controls

    def script(self, target: str, steps: Sequence[str]) -> None:
        """Make the next requests for `target` answer `steps`, one each, in order (the steps
        and targets are listed in the fake's module docstring)."""
        for step in steps:
            if not self.STEP.match(step):
                raise ValueError(
                    f"Scenario step {step!r} is not valid. Expected one of the steps "
                    f"listed in the {type(self).__module__} module docstring."
                )
        with self._lock:
            self._scripts[self._script_key(target)].extend(steps)

    def reset(self) -> None:
        """Forget requests, scripts, rate history and the fake's own records (a shared server)."""
        with self._lock:
            self._requests.clear()
            self._scripts.clear()
            self._recent.clear()
            self._forget()

    @property
    def requests(self) -> list[RecordT]:
        return self._snapshot(self._requests)

    # ---------------------------------------------------------------- for the fakes

    def _forget(self) -> None:
        """Clear the fake's own records and state; called by reset() with the lock held."""

    def _script_key(self, target: str) -> str:
        """The queue a target's steps go to (a fake may map names and ids to one queue)."""
        return target

    def _next_step(self, *targets: str | None) -> str | None:
        """The next scripted step of the first of `targets` that has one, taken off its queue."""
        with self._lock:
            for target in targets:
                queue = self._scripts.get(target) if target is not None else None
                if queue:
                    return queue.popleft()
            return None

    def _snapshot(self, items: list[ItemT]) -> list[ItemT]:
        """A copy of one of the fake's records, taken under the lock (handlers append to it)."""
        with self._lock:
            return list(items)

    def _keep(self, record: RecordT) -> None:
        with self._lock:
            self._requests.append(record)

    def _window_full(self, key: str, now: float, limit: int | None, window: float = 1.0) -> bool:
        """A sliding-window limit per `key`: True when `limit` requests already came within
        `window` seconds before `now`; else False and this one counted. Called with the lock
        held."""
        if limit is None:
            return False
        recent = self._recent[key]
        while recent and now - recent[0] >= window:
            recent.popleft()
        if len(recent) >= limit:
            return True
        recent.append(now)
        return False

    def _wait_for(
        self, items: Callable[[], list[ItemT]], count: int, timeout: float
    ) -> list[ItemT]:
        """`items()` once it holds `count` of them, or as it is when `timeout` runs out."""
        deadline = time.monotonic() + timeout
        while len(items()) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return items()

    def _abort(self, request: Request) -> None:
        """Close the client's socket at once, without any HTTP response."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} can only drop connections it serves")
        client = tuple(request.scope.get("client") or ())
        for connection in list(self._server.server_state.connections):
            if tuple(getattr(connection, "client", None) or ()) == client:
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()
                return

    async def _drop(self, request: Request) -> Response:
        self._abort(request)
        await wait_disconnect(request.receive)
        return Response(status_code=499)  # uvicorn discards what is sent after a disconnect

    async def _linger(self, request: Request) -> None:
        """No answer until the client gives up, or `hang_seconds` pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wait_disconnect(request.receive), self.hang_seconds)

    async def _hang(self, request: Request) -> Response:
        """No answer at all: wait for the client to give up, then close the socket."""
        await self._linger(request)
        return await self._drop(request)
