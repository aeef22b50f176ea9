"""Test harness: free ports, `relay serve` run as a real child process, and signed events
posted to it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
from signing import anchor_headers, deck_headers

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
