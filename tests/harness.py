"""Test harness: free ports, `relay serve` run as a real child process, signed events posted to
it, and `Rig`: the pipeline, store and worker of one relay in the test's own event loop."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import httpx
from signing import anchor_headers, deck_headers

from relay.assembly import senders_for
from relay.config import parse_config
from relay.delivery.policy import Pacing, RetryPolicy, settings
from relay.delivery.worker import Worker
from relay.event import Event
from relay.pipeline import Pipeline
from relay.runtime import build_runtime
from relay.store import open_store

ROOT = Path(__file__).resolve().parent.parent
# example events of every type, shipped with relay (`relay check` renders them): the tests read
# them here rather than from any folder outside the project
SAMPLES = ROOT / "relay" / "samples"
FIXTURES = ROOT / "tests" / "fixtures"


def sample(provider: str, name: str) -> Path:
    """A shipped sample event (or Tabstack stream); a missing one fails the test loudly."""
    path = SAMPLES / provider / name
    assert path.is_file(), f"sample {path} is missing"
    return path


def samples(provider: str, pattern: str) -> list[Path]:
    """The shipped samples of a provider matching `pattern`; none at all fails loudly (a
    parametrized test over an empty list would pass by running nothing)."""
    found = sorted((SAMPLES / provider).glob(pattern))
    assert found, f"no samples {pattern} in {SAMPLES / provider}"
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RelayProcess:
    """`relay serve` as a real child process on a free port, logs captured to files."""

    def __init__(self, config: Path, env: Mapping[str, str], workdir: Path) -> None:
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.env = {**os.environ, **env, "PORT": str(self.port)}
        self.env.pop("RELAY_CONFIG", None)
        self.stdout_path = workdir / f"relay-{self.port}.out"
        self.stderr_path = workdir / f"relay-{self.port}.err"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> RelayProcess:
        relay = Path(sys.executable).parent / "relay"
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(
                [str(relay), "serve", "--config", str(self.config), "--host", "127.0.0.1"],
                cwd=self.workdir,
                env=self.env,
                stdout=out,
                stderr=err,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"relay exited {self.proc.returncode}: {self.stderr()[-2000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"relay did not become ready: {self.stderr()[-2000:]}")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def post_anchor(relay: RelayProcess, body: bytes, ts: int | None = None) -> httpx.Response:
    """POST an event to relay's /hooks/anchor, signed as Anchor signs it (now, unless `ts`)."""
    headers = anchor_headers(body, int(time.time()) if ts is None else ts)
    return httpx.post(relay.url + "/hooks/anchor", content=body, headers=headers)


def post_deck(relay: RelayProcess, body: bytes, ts: int | None = None) -> httpx.Response:
    """POST an event to relay's /hooks/deck, signed as Deck signs it (now, unless `ts`)."""
    headers = deck_headers(body, int(time.time()) if ts is None else ts)
    return httpx.post(relay.url + "/hooks/deck", content=body, headers=headers)


def event_body(
    provider: str, kind: str, event_id: str | None = None, **data: Any
) -> dict[str, Any]:
    """A shipped sample event as JSON, with its `id` (if given) and `data` fields replaced."""
    body: dict[str, Any] = json.loads(sample(provider, f"{kind}.json").read_text())
    body["data"] = {**body["data"], **data}
    return body if event_id is None else {**body, "id": event_id}


def with_id(body: dict[str, Any], event_id: str, **top: Any) -> dict[str, Any]:
    """The event with its `id` (and any other top-level fields) replaced."""
    return {**body, "id": event_id, **top}


class Rig:
    """The pipeline and the worker of one relay on one database (a path in `folder`, or a
    PostgreSQL URL), in the test's event loop: stoppable and restartable, events fed to it
    parsed as its providers parse them. Use as `async with` or call start()/shutdown().

    `http`: True gives the senders a client of the rig's own (one per start), a client gives
    them that one, False none. `pacing`: the worker's (None: the Worker's default; "config":
    what `relay serve` derives from the config)."""

    def __init__(
        self,
        config: str,
        db: str,
        folder: Path,
        *,
        http: bool | httpx.AsyncClient = False,
        pacing: Pacing | Literal["config"] | None = None,
    ) -> None:
        self.runtime = build_runtime(parse_config(config, folder / "relay.yaml", {}))
        self.db = db
        self.folder = folder
        self.console = io.StringIO()
        self.clock: Callable[[], float] = time.time
        self._owns_http = http is True
        self._shared_http = http if isinstance(http, httpx.AsyncClient) else None
        self._pacing = (
            settings(self.runtime.config, self.runtime.paces)[0] if pacing == "config" else pacing
        )

    async def start(self) -> None:
        self.store = open_store(self.db, self.folder)
        await self.store.open()
        self.http = httpx.AsyncClient() if self._owns_http else self._shared_http
        senders = senders_for(self.runtime.config, self.console, self.http)
        retry = RetryPolicy(backoff_base=0.1)
        self.worker = Worker(
            self.store, senders, poll_seconds=0.05, retry=retry, pacing=self._pacing
        )
        self.pipeline = Pipeline(
            self.runtime, self.store, clock=self.clock, on_enqueued=self.worker.wake
        )
        self.stop = asyncio.Event()
        self.tasks = [
            asyncio.create_task(self.worker.run(self.stop)),
            asyncio.create_task(self.pipeline.run(self.stop)),
        ]

    async def shutdown(self) -> None:
        self.stop.set()
        for task in self.tasks:
            await task
        await self.worker.drain(5)
        await self.store.close()
        if self._owns_http and self.http is not None:
            await self.http.aclose()

    async def restart(self) -> None:
        await self.shutdown()
        await self.start()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    def parse(self, source: str, body: dict[str, Any]) -> Event:
        provider = self.runtime.providers[source]
        raw = json.dumps(body).encode()
        return provider.parse({"content-type": "application/json"}, raw)[0]

    async def accept(self, source: str, body: dict[str, Any]) -> None:
        """Accept an event and wait until the router has queued its messages."""
        await self.pipeline.accept(self.parse(source, body))
        deadline = time.monotonic() + 20
        while (await self.store.inbox_stats()).waiting:
            assert time.monotonic() < deadline, "the router did not take the event"
            await asyncio.sleep(0.01)

    async def settle(self, done: Callable[[], Awaitable[bool]] | None = None) -> None:
        """Until every row is finished (and `done`, if given, holds)."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            # the inbox first: an event leaves it in the transaction that queues its messages
            waiting = (await self.store.inbox_stats()).waiting
            busy = [s for s in await self.store.stats() if s.pending or s.inflight or s.digesting]
            if not waiting and not busy and (done is None or await done()):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"not settled: {await self.store.stats()}")
