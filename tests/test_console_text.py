"""Dry-run for people: the console prints each message as it reads in the chat (a title line
naming the destination and chat, then header, fields, text, buttons with their URLs, context),
with the raw JSON one setting away (`RELAY_DRY_RUN_FORMAT=json`). Golden texts of the built-in
templates on the shipped samples, every chat kind's dry-run sender, Block Kit from a user's
template, and event strings that try to drive the terminal.

Golden files: tests/golden/text/<provider>/<case>.txt. After an intended change, regenerate
and review the diff:

    RELAY_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_console_text.py
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest
from harness import ROOT, RelayProcess, post_anchor, sample
from signing import ANCHOR_SECRET
from test_templates import CASES

from relay.assembly import dry_run_style
from relay.config import parse_config
from relay.delivery.console import ConsoleSender
from relay.delivery.destinations import Clients, build_senders
from relay.errors import ConfigError
from relay.messages import Blocks, Button, Card, Field
from relay.records import MessageRef, Outgoing
from relay.render.renderer import Renderer

GOLDEN = ROOT / "tests" / "golden" / "text"
UPDATE = os.environ.get("RELAY_UPDATE_GOLDEN") == "1"
RENDERER = Renderer()
GOLDEN_CASES = [
    "anchor/task.failed", "anchor/task.completed", "anchor/intervention.requested",
    "anchor/batch.failed", "deck/task_run.failed", "deck/credential.invalid",
    "tabstack/run.completed",
]  # fmt: skip
# what a terminal would act on: any C0/C1 control but the newline, DEL, bidi overrides
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


async def printed(message: Card | Blocks, **where: object) -> str:
    stream = io.StringIO()
    sender = ConsoleSender(stream, "alerts", "#browser-alerts", style="text")
    await sender.send(Outgoing(message, **where))  # type: ignore[arg-type]
    return stream.getvalue()


@pytest.mark.parametrize("name", GOLDEN_CASES)
async def test_builtin_messages_read_as_their_golden_text(name: str) -> None:
    message = replace(RENDERER.render(CASES[name]).message, mentions=("@here", "U0123ABCD"))
    got = await printed(message)
    golden = GOLDEN / f"{name}.txt"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(got, encoding="utf-8")
    assert golden.exists(), f"no golden file {golden}; run with RELAY_UPDATE_GOLDEN=1"
    assert golden.read_text(encoding="utf-8") == got
    assert "{" not in got.split("\n", 2)[1]  # a header, not a line of JSON
    assert not UNSAFE.search(got)


def test_every_golden_text_has_a_case() -> None:
    stale = [
        p.relative_to(GOLDEN).with_suffix("").as_posix()
        for p in GOLDEN.rglob("*.txt")
        if p.relative_to(GOLDEN).with_suffix("").as_posix() not in GOLDEN_CASES
    ]
    assert stale == []


async def test_a_failed_task_reads_like_the_readmes_example() -> None:
    got = await printed(RENDERER.render(CASES["anchor/task.failed"]).message)
    lines = got.splitlines()
    assert lines[0] == "── alerts · slack #browser-alerts ──"
    assert lines[1] == "❌ Task failed: invalid credentials"
    assert "> Login rejected: wrong password" in lines
    assert re.search(r"^Duration +1m 1s$", got, re.M)
    assert re.search(r"^Cost +\$0\.034$", got, re.M)
    assert "[ Open session ] https://app.anchorbrowser.io/sessions/ses_8d2c1fda" in lines
    assert re.search(r"^anchor · evt_01HXJ8TA…K_FAILED · 2026-\d\d-\d\d \d\d:\d\d UTC$", got, re.M)


async def test_replies_and_updates_say_so_in_the_title() -> None:
    card = Card(status="success", title="Done")
    ref = MessageRef("C1", "0000000000.000001", None, 1, 0.0, 0.0)
    reply = await printed(card, reply_to=ref, broadcast=True)
    update = await printed(card, update=ref)
    assert reply.splitlines()[0] == (
        "── alerts · slack #browser-alerts · reply in thread 0000000000.000001, also in the "
        "channel ──"
    )
    assert (
        update.splitlines()[0] == "── alerts · slack #browser-alerts · updates 0000000000.000001 ──"
    )


CHATS = """
sources: {anchor: {provider: anchor, secrets: [s]}}
destinations:
  sl: {type: slack, channel: "#ops"}
  hook: {type: webhook}
  con: {type: console}
  tm: {type: teams}
  gc: {type: google_chat}
  dc: {type: discord}
  mm: {type: mattermost, url: "https://mm.example.com", token: "",
       channel_id: 4xp9fdt5pbgxjqmdwz1bk8rsya}
"""
CARD = Card(
    status="failure",
    title="Task failed",
    summary="It *broke* on <https://example.com/page|the page> at <!date^1716544084^{time}|x>",
    fields=(Field("Task", "`tsk_1`"), Field("Cost", "$0.03")),
    buttons=(Button("Open session", "https://app.example.com/s/1"),),
    context="anchor · evt_1",
    mentions=("@here", "teams:alice@contoso.com|Alice", "google_chat:users/1", "U0123ABCD"),
)
TITLES = {
    "sl": ("── sl · slack #ops ──", ["@here", "@U0123ABCD"]),
    "hook": ("── hook · slack ──", ["@here", "@U0123ABCD"]),
    "con": ("── con · slack ──", ["@here", "@U0123ABCD"]),
    "tm": ("── tm · teams ──", ["@Alice"]),
    "gc": ("── gc · google chat ──", ["@here", "@users/1"]),
    "dc": ("── dc · discord ──", ["@here"]),
    "mm": ("── mm · mattermost 4xp9fdt5pbgxjqmdwz1bk8rsya ──", ["@here"]),
}


async def test_every_chat_kinds_dry_run_prints_the_message_readably() -> None:
    config = parse_config(CHATS, Path("relay.yaml"), {}).config
    stream = io.StringIO()
    senders = build_senders(config, Clients(None, stream, 10.0, console_style="text"))
    assert sorted(senders) == sorted(TITLES)
    for name, (title, mentions) in TITLES.items():
        stream.seek(0)
        stream.truncate()
        await senders[name].send(Outgoing(CARD))
        lines = stream.getvalue().splitlines()
        assert lines[0] == title, name
        assert lines[1] == " ".join(mentions), name
        assert lines[2:] == [
            "❌ Task failed",
            "It broke on the page <https://example.com/page> at 2024-05-24 09:48 UTC",
            "Task  tsk_1",
            "Cost  $0.03",
            "[ Open session ] https://app.example.com/s/1",
            "anchor · evt_1",
        ], name


async def test_the_raw_json_is_one_setting_away() -> None:
    config = parse_config(CHATS, Path("relay.yaml"), {}).config
    stream = io.StringIO()
    senders = build_senders(config, Clients(None, stream, 10.0, console_style="json"))
    await senders["tm"].send(Outgoing(CARD))
    line = json.loads(stream.getvalue())
    assert line["destination"] == "tm" and line["chat"] == "teams"
    assert line["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert dry_run_style({}) == "text"
    assert dry_run_style({"RELAY_DRY_RUN_FORMAT": "JSON"}) == "json"
    with pytest.raises(ConfigError) as refused:
        dry_run_style({"RELAY_DRY_RUN_FORMAT": "yaml"})
    assert refused.value.detailed == ["RELAY_DRY_RUN_FORMAT: expected 'text' or 'json', got 'yaml'"]


async def test_block_kit_from_a_users_template_reads_block_by_block() -> None:
    blocks = (
        {"type": "header", "text": {"type": "plain_text", "text": "Deploy done"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "<!channel> *v2* is out"},
         "accessory": {"type": "button", "text": {"type": "plain_text", "text": "Notes"},
                       "url": "https://example.com/notes"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Env*\nprod"}]},
        {"type": "divider"},
        {"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Bad"},
             "url": "javascript:alert(1)"}]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "by <@U1>"}]},
        {"type": "video", "title": {"type": "plain_text", "text": "x"}},
    )  # fmt: skip
    got = await printed(Blocks("Deploy done", blocks))
    assert got.splitlines()[1:] == [
        "Deploy done",
        "@channel v2 is out",
        "[ Notes ] https://example.com/notes",
        "Env  prod",
        "─" * 40,
        "[ Bad ] (no link)",
        "by @U1",
        "[video block]",
    ]
    assert (await printed(Blocks("just text"))).splitlines()[1:] == ["just text"]


ESCAPES = [
    "\x1b[2J\x1b[31mred",  # clear the screen, colour
    "\x1b]0;owned\x07",  # set the window title
    "\x9b31m",  # CSI as one C1 character
    "a\rb",  # carriage return: overwrite what was printed
    "\u202egnp.exe",  # right-to-left override
    "\x00nul\x7fdel\x08bs",
]


@pytest.mark.parametrize("hostile", ESCAPES)
async def test_event_strings_cannot_drive_the_terminal(hostile: str) -> None:
    card = Card(
        status="failure",
        title=hostile,
        summary=hostile,
        fields=(Field(hostile, hostile),),
        sections=(hostile,),
        buttons=(Button(hostile, "https://example.com"),),
        context=hostile,
    )
    blocks = Blocks(hostile, ({"type": "header", "text": {"type": "plain_text", "text": hostile}},))
    for message in (card, blocks):
        got = await printed(message)
        assert not UNSAFE.search(got), repr(got)
        assert "\x1b" not in got and "\r" not in got


@pytest.mark.parametrize("style", ["text", "json"])
def test_relay_serve_prints_readably_unless_told_json(
    relay_process: type[RelayProcess], tmp_path: Path, style: str
) -> None:
    env = {
        "ANCHOR_WEBHOOK_SECRET": ANCHOR_SECRET,
        "RELAY_DATABASE_URL": f"sqlite:///{tmp_path}/r.db",
        **({"RELAY_DRY_RUN_FORMAT": "json"} if style == "json" else {}),
    }
    relay = relay_process(ROOT / "config.example.yaml", env, tmp_path).start()
    assert (
        post_anchor(relay, sample("anchor", "task.completed.json").read_bytes()).status_code == 202
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "Task completed" not in relay.stdout():
        time.sleep(0.05)
    out = relay.stdout()
    if style == "json":
        printed = json.loads(out.strip().splitlines()[0])
        assert printed["channel"] == "#browser-events"
        assert printed["blocks"][0]["type"] == "header"
    else:
        lines = out.splitlines()
        assert lines[0] == "── events · slack #browser-events ──"
        assert lines[1].startswith("✅ Task completed")
        assert any(line.startswith("[ Open session ] https://") for line in lines)
