"""The `relay` command line: check, render, outbox and dead-letter commands, with exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import ROOT, sample
from inbox import accept

from relay.cli import main, parser
from relay.event import Event
from relay.messages import Blocks
from relay.records import NewMessage, Reason, Settlement, Status
from relay.store import SqliteStore
from relay.store.schema import VERSION


def test_check_passes_on_the_example_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(ROOT / "config.example.yaml")]) == 0
    assert "ok:" in capsys.readouterr().out


def test_check_fails_naming_the_yaml_path(capsys: pytest.CaptureFixture[str]) -> None:
    bad = ROOT / "tests" / "configs" / "bad" / "unknown-destination.yaml"
    assert main(["check", "--config", str(bad)]) == 1
    assert "routes[1].to[1]: unknown destination 'opps'" in capsys.readouterr().err


def test_check_reports_a_broken_user_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "anchor").mkdir()
    (tmp_path / "anchor" / "task.failed.j2").write_text("{{ broken ")
    config = (ROOT / "config.example.yaml").read_text().replace("./templates", str(tmp_path))
    path = tmp_path / "c.yaml"
    path.write_text(config)
    assert main(["check", "--config", str(path)]) == 1
    assert "anchor/task.failed" in capsys.readouterr().out


def test_render_prints_what_goes_where(capsys: pytest.CaptureFixture[str]) -> None:
    event = sample("deck", "task_run.failed.json")
    assert main(["render", "--config", str(ROOT / "config.example.yaml"), str(event)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["event"]["type"] == "task_run.failed"
    [message] = out["messages"]
    assert (message["destination"], message["route"]) == ("alerts", "deck-attention")
    assert message["payload"]["text"] and message["payload"]["blocks"]


def test_render_shows_text_that_is_not_valid_text_as_relay_would_post_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = tmp_path / "event.json"  # lone surrogates, escaped and as the bytes ED A0 80
    event.write_bytes(
        b'{"id": "e1", "type": "task.failed", "text": "\\udfff",'
        b' "data": {"error": {"message": "broken \\ud800 page \xed\xa0\x80"}}}'
    )
    config = str(ROOT / "config.example.yaml")
    assert main(["render", "--config", config, "--source", "anchor", str(event)]) == 0
    printed = capsys.readouterr().out
    assert not re.search("[\ud800-\udfff]", printed)  # relay posts valid text only
    [message] = json.loads(printed)["messages"]
    assert "broken \ufffd page \ufffd" in json.dumps(message["payload"], ensure_ascii=False)


def test_render_tabstack_stream(capsys: pytest.CaptureFixture[str]) -> None:
    stream = sample("tabstack", "run-success.sse")
    assert main(["render", "--config", str(ROOT / "config.example.yaml"), str(stream)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["event"]["type"] for o in out] == ["run.started", "run.completed"]


def test_outbox_and_dead_letter_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RELAY_DATABASE_URL", f"sqlite:///{tmp_path}/relay.db")

    async def seed() -> None:
        store = SqliteStore(tmp_path / "relay.db")
        await store.open()
        for i in range(2):
            event = Event(
                source="anchor", provider="anchor", id=f"e{i}", type="task.failed", data={}
            )
            await accept(store, event, [NewMessage("alerts", f"k{i}", "t", Blocks("x"))], 1.0)
        found = await store.claim(1.0, 2.0, rate=10.0, burst=10.0, limit=10)
        for claim in found.claimed:
            row = claim.row
            await store.settle(
                Settlement(
                    row.id, row.pace_key, Status.DEAD, Reason.CHANNEL, 2.0, "channel_not_found"
                )
            )
        # accepted a minute ago, not routed yet (relay stopped before its router took it)
        waiting = Event(source="anchor", provider="anchor", id="w", type="task.failed", data={})
        await store.receive(waiting, time.time() - 60)
        await store.close()

    asyncio.run(seed())
    assert main(["outbox"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == [
        "destination", "pending", "inflight", "dead", "sent", "muted", "silenced", "digest",
        "oldest",
    ]  # fmt: skip
    assert table[1].split() == ["alerts", "0", "0", "2", "0", "0", "0", "0", "-"]
    assert re.fullmatch(r"accepted, waiting to be routed and rendered: 1, oldest 6\ds", table[2])
    assert main(["dead", "list"]) == 0
    letters = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["reason"], d["error"]) for d in letters] == [("channel", "channel_not_found")] * 2
    assert main(["dead", "replay"]) == 2  # needs IDs or --all
    assert main(["dead", "replay", str(letters[0]["id"])]) == 0
    assert main(["dead", "drop", "--all"]) == 0
    capsys.readouterr()

    async def statuses() -> tuple[int, int]:
        store = SqliteStore(tmp_path / "relay.db")
        await store.open()
        result = (len(await store.rows(Status.PENDING)), len(await store.rows(Status.DEAD)))
        await store.close()
        return result

    assert asyncio.run(statuses()) == (1, 0)


def test_migrate_creates_the_schema_on_either_backend(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RELAY_DATABASE_URL", f"sqlite:///{tmp_path}/relay.db")
    assert main(["migrate"]) == 0
    assert f"is at schema version {VERSION}" in capsys.readouterr().out
    monkeypatch.setenv("RELAY_DATABASE_URL", pg_url)
    assert main(["migrate"]) == 0
    assert main(["migrate"]) == 0  # idempotent
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ok: PostgresStore(") and out[0].endswith(
        f"is at schema version {VERSION}"
    )


def test_an_unreachable_database_is_named_without_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RELAY_DATABASE_URL", "postgresql://relay:hunter2@127.0.0.1:1/relay")
    assert main(["migrate"]) == 1
    err = capsys.readouterr().err
    assert "cannot connect to PostgreSQL at postgresql://relay:***@127.0.0.1:1/relay" in err
    assert "hunter2" not in err


ROUTES_CONFIG = """
sources: {anchor: {provider: anchor}, deck: {provider: deck}}
destinations: {alerts: {type: console}, events: {type: console}}
routes:
  - name: noise
    match: {source: deck, type: agent.updated}
    drop: true
  - name: slow-failures
    match: {type: task.failed, when: [{path: duration_ms, gt: 60000}]}
    to: [alerts]
    mention: ["@here"]
    continue: true
  - name: failures
    match: {type: "*.failed"}
    to: [alerts, events]
    thread: auto
default: {to: [events]}
"""


def test_routes_explains_each_rule_and_the_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "relay.yaml"
    config.write_text(ROUTES_CONFIG)
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps({"id": "evt_1", "type": "task.failed", "data": {"duration_ms": 1200}})
    )
    assert main(["routes", "--config", str(config), str(event)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "anchor task.failed (evt_1)",
        "  noise          no match: source 'anchor' not in ['deck']",
        "  slow-failures  no match: condition failed: duration_ms gt 60000.0",
        "  failures       match, stop",
        "=> alerts: route failures; template anchor/task.failed; thread auto",
        "=> events: route failures; template anchor/task.failed; thread auto",
    ]


def test_render_shows_how_messages_join_their_thread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "relay.yaml"
    config.write_text(ROUTES_CONFIG)
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps(
            {"id": "evt_2", "object": "event", "type": "task_run.failed",
             "data": {"id": "trun_9", "status": "failed"}, "created_at": "2025-01-15T09:31:15Z"}
        )
    )  # fmt: skip
    assert main(["render", "--config", str(config), str(event)]) == 0
    out = json.loads(capsys.readouterr().out)
    steps = [(m["destination"], m.get("conversation", {})) for m in out["messages"]]
    # each destination: update the run's message, and reply broadcast (a failure)
    assert [d for d, _ in steps] == ["alerts", "alerts", "events", "events"]
    assert [s.get("update") for _, s in steps] == ["thread:deck:trun_9", None] * 2
    assert [s.get("broadcast", False) for _, s in steps] == [False, True] * 2


WRONG_VALUES = """
sources: {anchor: {provider: anchor, secrets: [s], tolerance: 2 minutes}}
slack: {timeout: "${RELAY_TEST_WRONG}"}
destinations: {events: {type: console}}
"""


def test_check_shows_values_but_those_from_the_environment_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RELAY_TEST_WRONG", "xoxb-9999-FromTheEnvironment")
    config = tmp_path / "relay.yaml"
    config.write_text(WRONG_VALUES)
    assert main(["check", "--config", str(config)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: sources.anchor.tolerance: '2 minutes' is not a duration "
        "(expected e.g. 30s, 5m, 24h)",
        "error: slack.timeout: '${RELAY_TEST_WRONG}' is not a duration "
        "(expected e.g. 30s, 5m, 24h)",
    ]


def test_serve_logs_a_config_it_refuses_without_its_values(tmp_path: Path) -> None:
    config = tmp_path / "relay.yaml"
    config.write_text(WRONG_VALUES.replace("${RELAY_TEST_WRONG}", "xoxb-9999-TypedInTheFile"))
    relay = Path(sys.executable).parent / "relay"
    done = subprocess.run(
        [str(relay), "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/relay.db"},
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: sources.anchor.tolerance: not a duration (expected e.g. 30s, 5m, 24h)",
        "error: slack.timeout: not a duration (expected e.g. 30s, 5m, 24h)",
    ]


COMMANDS = [
    ["serve"], ["check"], ["render", "e.json"], ["routes", "e.json"], ["migrate"], ["outbox"],
    ["dead", "list"], ["dead", "replay", "--all"], ["dead", "drop", "7"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_every_command_takes_config_alike(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RELAY_CONFIG", raising=False)
    assert parser().parse_args([*command, "--config", "given.yaml"]).config == "given.yaml"
    monkeypatch.setenv("RELAY_CONFIG", "from-env.yaml")
    assert parser().parse_args(command).config == "from-env.yaml"


def test_serve_listens_where_host_and_port_say(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOST", raising=False)
    monkeypatch.delenv("PORT", raising=False)
    assert (parser().parse_args(["serve"]).host, parser().parse_args(["serve"]).port) == (
        "0.0.0.0",
        8080,
    )
    monkeypatch.setenv("HOST", "127.0.0.2")
    monkeypatch.setenv("PORT", "9000")
    args = parser().parse_args(["serve"])
    assert (args.host, args.port) == ("127.0.0.2", 9000)
    assert parser().parse_args(["serve", "--host", "::1"]).host == "::1"


def test_outbox_with_a_config_lists_every_configured_destination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RELAY_DATABASE_URL", f"sqlite:///{tmp_path}/relay.db")
    config = tmp_path / "relay.yaml"
    config.write_text(ROUTES_CONFIG)
    assert main(["outbox"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["(outbox is empty)"]
    assert main(["outbox", "--config", str(config)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert rows == [
        ["alerts", "0", "0", "0", "0", "0", "0", "0", "-"],
        ["events", "0", "0", "0", "0", "0", "0", "0", "-"],
    ]
    monkeypatch.setenv("RELAY_CONFIG", str(config))
    assert main(["outbox"]) == 0
    assert [line.split() for line in capsys.readouterr().out.splitlines()[1:]] == rows


@pytest.mark.parametrize("command", [["migrate"], ["outbox"], ["dead", "list"]])
def test_a_store_command_refuses_an_invalid_config_and_leaves_the_store_alone(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    monkeypatch.setenv("RELAY_DATABASE_URL", f"sqlite:///{tmp_path}/relay.db")
    config = tmp_path / "relay.yaml"
    config.write_text(ROUTES_CONFIG.replace("to: [alerts]", "to: [alrets]"))
    assert main([*command, "--config", str(config)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: routes[1].to[0]: unknown destination 'alrets' (known: alerts, events)"
    ]
    assert not (tmp_path / "relay.db").exists()
    config.write_text(ROUTES_CONFIG)
    assert main([*command, "--config", str(config)]) == 0
