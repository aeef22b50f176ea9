"""The delivery worker in a process of its own (`RELAY_DELIVERY_PROCESS=on`), run for real:
it delivers what the parent routes, takes the parent's reloaded config, is started again when
it dies (nothing lost), stops with the parent (SIGTERM: its sends finished; SIGKILL: it sees its
parent gone and exits), and a value relay does not know is refused at start-up. In the test's own
process: the child keeps its long-lived objects out of the collector's full passes, and a child
that fails says why in a JSON log line."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fakeslack import FakeSlack
from harness import RelayProcess, post_anchor, sample
from signing import ADMIN_TOKEN, ANCHOR_SECRET, SLACK_TOKEN
from test_operations import ALERTS, EVENTS
from test_operations import CONFIG as OPERATIONS_CONFIG

from relay.assembly import ChildDeliveries, child_deliveries
from relay.config import LoadedConfig, load_config
from relay.delivery import child as delivery_child_main
from relay.delivery.process import Child, Deliveries, write_message

# test_operations.py's two Slack channels, paced fast enough for a few dozen messages
CONFIG = OPERATIONS_CONFIG + "pacing: {rate: 50, burst: 10}\n"
SAMPLE = json.loads(sample("anchor", "task.completed.json").read_text())


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def relay(
    slack: FakeSlack,
    relay_process: type[RelayProcess],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> RelayProcess:
    """relay with a delivery process, on SQLite (or PostgreSQL: parametrized "postgres")."""
    slack.reset()
    database = f"sqlite:///{tmp_path}/relay.db"
    if getattr(request, "param", "sqlite") == "postgres":
        database = request.getfixturevalue("pg_url")
    (tmp_path / "relay.yaml").write_text(CONFIG)
    env = {
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
        "RELAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "RELAY_DATABASE_URL": database,
        "RELAY_DELIVERY_PROCESS": "on",
    }
    return relay_process(tmp_path / "relay.yaml", env, tmp_path).start()


def post(relay: RelayProcess, event_id: str) -> int:
    body = json.dumps({**SAMPLE, "id": event_id, "data": {**SAMPLE["data"], "task_id": event_id}})
    return post_anchor(relay, body.encode()).status_code


def wait_for(condition: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def delivery_child(relay: RelayProcess) -> int:
    """The pid of the relay's delivery process (waits for it to be running)."""
    assert relay.proc is not None
    found: list[int] = []

    def started() -> bool:
        found[:] = children(relay.proc.pid)  # type: ignore[union-attr]
        return len(found) == 1

    wait_for(started)
    return found[0]


def children(pid: int) -> list[int]:
    listed = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(c) for c in listed if b"relay.delivery.child" in Path(f"/proc/{c}/cmdline").read_bytes()
    ]


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has exited; its parent has not reaped it


@pytest.mark.parametrize("relay", ["sqlite", "postgres"], indirect=True)
def test_it_delivers_in_order_from_a_process_of_its_own(
    relay: RelayProcess, slack: FakeSlack
) -> None:
    child = delivery_child(relay)
    assert child != relay.proc.pid  # type: ignore[union-attr]
    ids = [f"dp{i:02d}" for i in range(30)]
    for event_id in ids:
        assert post(relay, event_id) == 202
    wait_for(lambda: len(slack.messages) == len(ids))
    texts = [m.text or "" for m in slack.messages]
    assert [next(i for i in ids if i in t) for t in texts] == ids  # once each, in order
    assert {m.channel for m in slack.messages} == {EVENTS}


def test_a_reloaded_config_reaches_the_delivery_process(
    relay: RelayProcess, slack: FakeSlack, tmp_path: Path
) -> None:
    delivery_child(relay)
    assert post(relay, "dp-before") == 202
    wait_for(lambda: len(slack.messages) == 1)
    # the channel a destination posts to is the sender's business: the child's
    (tmp_path / "relay.yaml").write_text(
        CONFIG.replace('events: {type: slack, channel: "#browser-events"}',
                       'events: {type: slack, channel: "#browser-alerts"}')
    )  # fmt: skip
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    answer = httpx.post(relay.url + "/admin/reload", headers=auth)
    assert answer.status_code == 200, answer.text
    assert post(relay, "dp-after") == 202
    wait_for(lambda: len(slack.messages) == 2)
    assert [m.channel for m in slack.messages] == [EVENTS, ALERTS]


def test_a_delivery_process_that_dies_is_started_again_and_nothing_is_lost(
    relay: RelayProcess, slack: FakeSlack
) -> None:
    first = delivery_child(relay)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: "delivery process exited" in relay.stderr())
    # accepted while no child runs: they wait in the outbox for the next one
    for i in range(5):
        assert post(relay, f"dp-k{i}") == 202
    second = delivery_child(relay)
    assert second != first
    wait_for(lambda: len(slack.messages) == 5)
    texts = " ".join(m.text or "" for m in slack.messages)
    assert all(texts.count(f"dp-k{i}") == 1 for i in range(5))
    line = next(
        json.loads(x) for x in relay.stderr().splitlines() if "delivery process exited" in x
    )
    assert line["level"] == "error" and line["exit_code"] == -signal.SIGKILL


def test_sigterm_stops_both_processes_after_their_sends(relay: RelayProcess) -> None:
    child = delivery_child(relay)
    assert post(relay, "dp-term") == 202
    # graceful shutdown (uvicorn re-raises the signal once the app has shut down)
    assert relay.terminate() in (0, -signal.SIGTERM)
    assert "Application shutdown complete." in relay.stderr()
    wait_for(lambda: not alive(child), timeout=5)
    assert "delivery process did not stop in time" not in relay.stderr()


def test_a_child_whose_parent_was_killed_exits(relay: RelayProcess) -> None:
    child = delivery_child(relay)
    relay.kill()  # SIGKILL: no word to the child
    wait_for(lambda: not alive(child), timeout=15)


def test_an_unknown_value_is_refused_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "relay.yaml").write_text(CONFIG)
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_API_URL": "http://127.0.0.1:9",
        "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
        "RELAY_DELIVERY_PROCESS": "yes please",
    }
    relay = Path(sys.executable).parent / "relay"
    done = subprocess.run(
        [str(relay), "serve", "--config", str(tmp_path / "relay.yaml"), "--port", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "RELAY_DELIVERY_PROCESS: expected 'on' or 'off', got 'yes please'" in done.stderr


class Leftovers:
    """What a config leaves behind in a reference cycle: only a full collection frees it."""

    def __init__(self) -> None:
        self.me = self


LEFT: list[weakref.ref[Leftovers]] = []  # one per config the deliveries below were given


class Recorded:
    """The child's real deliveries, holding `Leftovers` of each config it was given."""

    def __init__(self, inner: ChildDeliveries) -> None:
        self.inner = inner
        self.worker = inner.worker
        self._leave()

    def _leave(self) -> None:
        self.leftovers = Leftovers()
        LEFT.append(weakref.ref(self.leftovers))

    def reload(self, loaded: LoadedConfig) -> None:
        self.inner.reload(loaded)
        self._leave()

    async def close(self) -> None:
        await self.inner.close()


def recorded_build(loaded: LoadedConfig, env: dict[str, str], cwd: Path) -> Deliveries:
    return Recorded(child_deliveries(loaded, env, cwd))


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """The child runs in this process: its frozen heap and its log handler are undone after."""
    handlers = logging.getLogger().handlers[:]
    level = logging.getLogger().level
    gc.unfreeze()
    yield
    gc.unfreeze()
    logging.getLogger().handlers[:] = handlers
    logging.getLogger().setLevel(level)


def test_the_delivery_process_keeps_its_heap_out_of_full_collections(
    tmp_path: Path, unfrozen: None
) -> None:
    (tmp_path / "relay.yaml").write_text(CONFIG)
    env = {
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_API_URL": "http://127.0.0.1:9",
        "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
        "RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db",
    }
    loaded = load_config(tmp_path / "relay.yaml", env)
    start = Child(loaded, env, tmp_path, "WARNING", (), recorded_build)

    async def until(condition: Callable[[], bool]) -> None:
        for _ in range(1000):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("timed out")

    async def run() -> None:
        ours, theirs = socket.socketpair()
        wakes, wakes_theirs = socket.socketpair()
        delivering = asyncio.create_task(delivery_child_main._deliver(theirs, wakes_theirs))
        _reader, control = await asyncio.open_connection(sock=ours)
        write_message(control, ("start", start))
        # settled once started: full collections no longer walk the config and the clients
        await until(lambda: gc.get_freeze_count() > 0)
        first = LEFT[-1]
        gc.collect()
        assert first() is not None  # in use

        # a reload hands the heap back, so that what the old config left can be freed
        write_message(control, ("config", loaded))
        await until(lambda: len(LEFT) == 2 and gc.get_freeze_count() > 0)
        assert first() is None
        assert LEFT[-1]() is not None

        write_message(control, ("stop", 1.0))
        await control.drain()
        await asyncio.wait_for(delivering, 10)
        control.close()
        wakes.close()
        wakes_theirs.close()  # the child's process would close it by exiting

    asyncio.run(run())


CHILD_SECRET = "xoxb-child-secret-value"


def failing_build(loaded: LoadedConfig, env: dict[str, str], cwd: Path) -> Deliveries:
    raise RuntimeError(f"cannot reach the store with {CHILD_SECRET}")


def test_a_failing_delivery_process_says_why_in_a_json_line_without_secrets(
    tmp_path: Path,
) -> None:
    (tmp_path / "relay.yaml").write_text(CONFIG)
    env = {
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_API_URL": "http://127.0.0.1:9",
        "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
    }
    loaded = load_config(tmp_path / "relay.yaml", env)
    start = Child(loaded, env, tmp_path, "INFO", (CHILD_SECRET,), failing_build)
    data = pickle.dumps(("start", start), protocol=pickle.HIGHEST_PROTOCOL)
    ours, theirs = socket.socketpair()
    wakes, wakes_theirs = socket.socketpair()
    with ours, theirs, wakes, wakes_theirs:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "relay.delivery.child",
                str(theirs.fileno()),
                str(wakes_theirs.fileno()),
            ],
            pass_fds=(theirs.fileno(), wakes_theirs.fileno()),
            # the test modules, where `failing_build` is found by the pickle
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
            stderr=subprocess.PIPE,
            text=True,
        )
        ours.sendall(len(data).to_bytes(4, "big") + data)
        _out, err = child.communicate(timeout=30)
    assert child.returncode == 1
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    failed = [line for line in lines if line["message"] == "delivery process failed"]
    assert failed, err
    assert failed[0]["level"] == "error"
    assert "RuntimeError: cannot reach the store with [redacted]" in failed[0]["exception"]
    assert CHILD_SECRET not in err
