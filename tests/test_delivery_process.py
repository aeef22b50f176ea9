"""The delivery worker in a process of its own (`RELAY_DELIVERY_PROCESS=on`), run for real:
it delivers what the parent routes, takes the parent's reloaded config, is started again when
it dies (nothing lost), stops with the parent (SIGTERM: its sends finished; SIGKILL: it sees its
parent gone and exits), and a value relay does not know is refused at start-up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fakeslack import FakeSlack
from harness import RelayProcess, post_anchor, sample
from signing import ADMIN_TOKEN, ANCHOR_SECRET, SLACK_TOKEN
from test_operations import ALERTS, EVENTS
from test_operations import CONFIG as OPERATIONS_CONFIG

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
