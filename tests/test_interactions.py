"""Slack interactivity, piece by piece: the config keys, `relay check`'s warnings, Slack's
signature (every secret, the tolerance), reading a click, what a click does to the store (a
silence scoped to the message, replays refused) on SQLite and PostgreSQL, and the upgrade of a
database written by the previous schema. Property tests: whatever a click carries (any user
name, any text), the updated message mentions nobody but the clicking user's id and links
nowhere. The running relay is tested in test_interactions_e2e.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oldschema import store_at

from relay.config import load_config, parse_config
from relay.conversation.moves import effects, move
from relay.errors import ConfigError
from relay.event import Event
from relay.interactions import (
    Action,
    Click,
    MalformedClick,
    Notice,
    NoticeKind,
    UnknownAction,
    Verdict,
    parse_click,
    verify,
    with_buttons,
    with_notice,
)
from relay.interactions.blocks import NOTICE_BLOCK_ID
from relay.ops.check import check
from relay.ops.interactions import ClickRefused, act, mute_request
from relay.pipeline import Pipeline
from relay.records import DeliveryResult, OutboxRow, Outcome, Reason, Settlement, Status, Step
from relay.render.formats.slack import payload
from relay.runtime import build_runtime
from relay.store import Store, open_store
from relay.store.schema import VERSION

T0 = 1_800_000_000.0
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CONFIG = """
sources:
  anchor: {provider: anchor, secrets: [test-secret]}
slack: {signing_secrets: [s3cret]}
destinations:
  alerts: {type: console}
routes:
  - {match: {type: task.failed}, to: [alerts], buttons: [mute, ack]}
  - {match: {type: session.failed}, to: [alerts], buttons: mute, thread: auto}
  - {match: {type: task.retried}, to: [alerts], buttons: [ack], repeat: {key: [data.task_id]}}
"""


def config(text: str, env: dict[str, str] | None = None) -> Any:
    return parse_config(text, Path("relay.yaml"), env or {})


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config(text)
    return caught.value.public


# ---------------------------------------------------------------- config and relay check


def test_signing_secrets_are_secrets_and_blank_ones_are_left_out() -> None:
    text = CONFIG.replace("[s3cret]", '["${A:-}", "${B:-}"]')
    loaded = config(text, {"A": "first-secret", "B": ""})
    assert [s.get_secret_value() for s in loaded.config.slack.signing_secrets] == ["first-secret"]
    assert "first-secret" not in repr(loaded.config.slack)
    one = config(CONFIG.replace("[s3cret]", "just-one"))
    assert [s.get_secret_value() for s in one.config.slack.signing_secrets] == ["just-one"]


def test_buttons_are_checked_by_name_and_not_on_digests() -> None:
    route = "  - {match: {type: task.failed}, to: [alerts], buttons: [mute, snooze]}\n"
    (problem,) = errors(CONFIG + route)
    assert problem.startswith("routes[3].buttons[1]: ") and "'mute' or 'ack'" in problem
    grouped = "  - {match: {type: x}, to: [alerts], buttons: [ack], group: {by: [type]}}\n"
    assert errors(CONFIG + grouped) == [
        "routes[3]: a route with `group` posts digests: it cannot also have `buttons`"
    ]
    assert config(CONFIG).config.routes[1].buttons == ["mute"]  # one name without a list


def test_relay_check_warns_when_buttons_cannot_work() -> None:
    text = CONFIG.replace("slack: {signing_secrets: [s3cret]}\n", "")
    report = check(build_runtime(config(text)))
    assert report.warnings[:3] == [
        "routes[0].buttons: slack.signing_secrets is empty: clicks on the buttons are refused"
        " (404)",
        "routes[0].buttons: slack.token is empty: no message carries the buttons",
        "routes[0].buttons: destination 'alerts' is not a Slack channel (type: slack):"
        " its messages carry no buttons",
    ]
    ready = CONFIG.replace(
        "slack: {signing_secrets: [s3cret]}", "slack: {signing_secrets: [s3cret], token: xoxb-1}"
    ).replace("alerts: {type: console}", "alerts: {type: slack, channel: C0ALERTS1}")
    assert not [w for w in check(build_runtime(config(ready))).warnings if "buttons" in w]


# ---------------------------------------------------------------- Slack's signature


def signed(body: bytes, ts: int, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"x-slack-request-timestamp": str(ts), "x-slack-signature": f"v0={digest}"}


def test_the_signature_is_checked_with_every_secret_within_five_minutes() -> None:
    body, ts = b"payload=%7B%7D", int(T0)
    assert verify(signed(body, ts), body, ["old", SECRET], T0) is Verdict.VALID
    assert verify(signed(body, ts), body, ["old"], T0) is Verdict.FORGED
    assert verify(signed(body, ts), body + b"x", [SECRET], T0) is Verdict.FORGED
    assert verify(signed(body, ts), body, [SECRET], T0 + 300) is Verdict.VALID
    assert verify(signed(body, ts), body, [SECRET], T0 + 301) is Verdict.STALE
    assert verify(signed(body, ts), body, [SECRET], T0 - 301) is Verdict.STALE
    assert verify({}, body, [SECRET], T0) is Verdict.UNSIGNED
    newline = {
        **signed(body, ts),
        "x-slack-signature": signed(body, ts)["x-slack-signature"] + "\n",
    }
    assert verify(newline, body, [SECRET], T0) is Verdict.UNSIGNED
    assert verify({**signed(body, ts), "x-slack-request-timestamp": "1e9"}, body, [SECRET], T0) is (
        Verdict.UNSIGNED
    )


# ---------------------------------------------------------------- reading a click


def click_payload(
    user: Any = None, action_id: str = "relay-mute", value: str = "7", **more: Any
) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": user if user is not None else {"id": "U0ALICE42", "name": "alice"},
        "container": {"type": "message", "channel_id": "C0ALERTS1", "message_ts": "1.000100"},
        "actions": [{"action_id": action_id, "value": value, "type": "button"}],
        **more,
    }


def form(document: Any) -> bytes:
    return urlencode({"payload": json.dumps(document)}).encode()


def test_a_click_is_read_from_the_form_and_nothing_else_is() -> None:
    assert parse_click(form(click_payload())) == Click(
        Action.MUTE, "U0ALICE42", "C0ALERTS1", "1.000100", 7
    )
    unmute = parse_click(
        form(click_payload(action_id="relay-unmute", value="7:sil_0123456789abcdef"))
    )
    assert (unmute.action, unmute.silence_id) == (Action.UNMUTE, "sil_0123456789abcdef")
    with pytest.raises(UnknownAction):
        parse_click(form(click_payload(action_id="approve")))
    for bad in (
        b"payload=%7B",
        b"payload=1&payload=2",
        form([]),
        form({**click_payload(), "type": "view_submission"}),
        form(click_payload(user={"id": "<!channel>"})),
        form(click_payload(user={"id": "U0ALICE42\n"})),
        form(click_payload(value="7:sil_0123456789abcdef")),  # not an Unmute
        form(click_payload(action_id="relay-unmute", value="7")),
        form(click_payload(value="-1")),
        form({**click_payload(), "actions": []}),
        b"\xff\xfe",
    ):
        with pytest.raises(MalformedClick):
            parse_click(bad)


# any text, as a user's name or a message's text, with Slack's control sequences mixed in
HOSTILE = st.text(max_size=40) | st.sampled_from(
    ["<!channel>", "<@U0BOSS1>", "<https://evil.test|click>", "&lt;!here&gt;", "*bold*", "U0X|y"]
)
CONTROL = re.compile(r"<[^>]*>")


@settings(max_examples=300, deadline=None)
@given(
    user_id=HOSTILE | st.from_regex(r"[UW][A-Z0-9]{2,20}", fullmatch=True),
    name=HOSTILE,
    text=HOSTILE,
    kind=st.sampled_from(["relay-mute", "relay-ack", "relay-unmute"]),
)
def test_no_click_can_put_a_mention_or_a_link_in_the_message(
    user_id: str, name: str, text: str, kind: str
) -> None:
    value = "7:sil_0123456789abcdef" if kind == "relay-unmute" else "7"
    document = click_payload(
        {"id": user_id, "name": name, "username": name}, kind, value,
        message={"text": text, "blocks": [{"type": "section", "text": {"text": text}}]},
    )  # fmt: skip
    try:
        click = parse_click(form(document))
    except MalformedClick:
        assert not re.fullmatch(r"[UW][A-Z0-9]{2,20}", user_id)
        return
    assert click.user_id == user_id
    notice_kind = {Action.MUTE: NoticeKind.MUTED, Action.ACK: NoticeKind.ACKED}.get(
        click.action, NoticeKind.UNMUTED
    )
    notice = Notice(notice_kind, click.user_id, T0 + 3600, "sil_0123456789abcdef")
    mine = [{"type": "section", "text": {"type": "mrkdwn", "text": "relay's own text"}}]
    blocks = with_notice(mine, notice, ("mute", "ack"), click.row_id)
    rendered = json.dumps(blocks)
    assert CONTROL.findall(rendered) == [f"<@{user_id}>"]  # the clicker, nobody else, no link
    assert blocks[0] == mine[0]
    (line,) = [b["elements"][0]["text"] for b in blocks if b.get("block_id") == NOTICE_BLOCK_ID]
    assert re.fullmatch(
        rf"(:no_bell: Muted by <@{user_id}> until 09:00 UTC|:eyes: <@{user_id}> is on it"
        rf"|:bell: Unmuted by <@{user_id}>)",
        line,
    ), line  # relay's words and the clicker's id only: never the name, never the text


# ---------------------------------------------------------------- what a click does


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else "relay.db"
    s = open_store(url, tmp_path)
    await s.open()
    yield s
    await s.close()


async def sent(store: Store, tmp_path: Path, *events: Event) -> list[OutboxRow]:
    """Route the events, then record every message as sent in channel C0ALERTS1."""
    pipeline = Pipeline(build_runtime(config(CONFIG)), store, clock=lambda: T0)
    for e in events:
        await pipeline.accept(e)
    while await pipeline.route_pending():
        pass
    rows = await store.rows(Status.PENDING)
    while claimed := (await store.claim(T0, T0 + 60, rate=100.0, burst=100.0, limit=10)).claimed:
        for claim in claimed:
            row = claim.row  # as the worker does: the move, Slack's answer, what is remembered
            done = move(row, claim.refs, T0)
            ts = done.out.update.ts if done.out.update is not None else f"1.{row.id:06d}"
            result = DeliveryResult(Outcome.SENT, Reason.OK, channel_id="C0ALERTS1", ts=ts)
            remembered, result = effects(row, done, result, claim.refs, T0)
            settled = Settlement(
                row.id, row.pace_key, Status.SENT, Reason.OK, T0, channel_id="C0ALERTS1",
                ts=ts, effects=remembered,
            )  # fmt: skip
            await store.settle(settled)
    return rows


def failed(n: int, kind: str = "task.failed", **data: Any) -> Event:
    return Event("anchor", "anchor", f"evt_{n}", kind, {"task_id": f"tsk_{n}", **data})


def clicked(row: OutboxRow, action: Action, user: str = "U0ALICE42", **more: Any) -> Click:
    return Click(action, user, "C0ALERTS1", f"1.{row.id:06d}", row.id, **more)


async def test_mute_silences_what_the_message_is_about_and_unmute_ends_it(
    store: Store, tmp_path: Path
) -> None:
    (row,) = await sent(store, tmp_path, failed(1))
    assert row.step == Step(buttons=("mute", "ack"), main=("task_id", "tsk_1"))
    update = await act(store, clicked(row, Action.MUTE), T0, ["alerts"])
    (silence,) = await store.silences(T0)
    assert (silence.destination, silence.key, silence.created_by) == ("alerts", None, "U0ALICE42")
    assert silence.match.model_dump(exclude_unset=True) == {
        "source": ["anchor"], "type": ["task.failed"],
        "when": [{"path": "task_id", "equals": "tsk_1"}],
    }  # fmt: skip
    assert silence.ends_at == T0 + 3600
    assert (update.channel_id, update.ts) == ("C0ALERTS1", f"1.{row.id:06d}")
    original = payload(row.message)
    assert update.text == original["text"]
    assert update.blocks[: len(original["blocks"])] == original["blocks"]
    (line,) = [b for b in update.blocks if b.get("block_id") == NOTICE_BLOCK_ID]
    assert line["elements"][0]["text"] == ":no_bell: Muted by <@U0ALICE42> until 09:00 UTC"
    assert update.blocks[-1]["elements"][0]["value"] == f"{row.id}:{silence.id}"

    with pytest.raises(ClickRefused) as refused:  # Unmute of another silence: not this one's
        other = await store.silences(T0)
        await act(store, clicked(row, Action.UNMUTE, silence_id="sil_0123456789abcdef"), T0, [])
    assert refused.value.code == "unknown_silence" and other == await store.silences(T0)
    await act(store, clicked(row, Action.UNMUTE, "W0BOB12", silence_id=silence.id), T0 + 60, [])
    assert await store.silences(T0 + 60) == []


async def test_a_mute_takes_the_repeat_key_else_the_thread_key(
    store: Store, tmp_path: Path
) -> None:
    rows = await sent(
        store, tmp_path, failed(2, "session.failed", session_id="ses_9"), failed(3, "task.retried")
    )
    by_type = {r.event_type: r for r in rows}
    thread = mute_request(by_type["session.failed"], "U0ALICE42")
    assert thread.key == "thread:anchor:ses_9"
    repeat = mute_request(by_type["task.retried"], "U0ALICE42")
    assert repeat.key is not None and repeat.key.startswith("repeat:anchor:")
    with pytest.raises(ClickRefused) as refused:  # task.retried carries I'm on it alone
        await act(store, clicked(by_type["task.retried"], Action.MUTE), T0, ["alerts"])
    assert refused.value.code == "unknown_action"
    assert await store.silences(T0) == []


async def test_a_click_on_a_repeated_message_keeps_its_counter(
    store: Store, tmp_path: Path
) -> None:
    retried = [
        Event("anchor", "anchor", f"evt_r{n}", "task.retried", {"task_id": "t"}) for n in (1, 2)
    ]
    first, second = await sent(store, tmp_path, *retried)
    assert first.step is not None and second.step is not None
    assert second.step.repeat == first.step.repeat  # the second updates the first's counter
    click = Click(Action.ACK, "U0ALICE42", "C0ALERTS1", f"1.{first.id:06d}", second.id)
    update = await act(store, click, T0, ["alerts"])  # the repeat's buttons name its own row
    assert "(seen 2 times)" in update.text
    assert ":repeat: Seen 2 times" in json.dumps(update.blocks)
    assert ":eyes: <@U0ALICE42> is on it" in json.dumps(update.blocks)


async def test_a_click_that_relay_records_do_not_back_changes_nothing(
    store: Store, tmp_path: Path
) -> None:
    (row,) = await sent(store, tmp_path, failed(4))
    for click, code in (
        (Click(Action.MUTE, "U0ALICE42", "C0ALERTS1", "1.000001", 999), "unknown_message"),
        (
            Click(Action.MUTE, "U0ALICE42", "C0OTHER99", f"1.{row.id:06d}", row.id),
            "unknown_message",
        ),
        (Click(Action.MUTE, "U0ALICE42", "C0ALERTS1", "9.999999", row.id), "unknown_message"),
    ):
        with pytest.raises(ClickRefused) as refused:
            await act(store, click, T0, ["alerts"])
        assert refused.value.code == code
    assert await store.silences() == []


async def test_a_signature_is_acted_on_once_by_every_replica(store: Store) -> None:
    assert await store.first_use("v0=aa", T0, T0 - 600)
    assert not await store.first_use("v0=aa", T0 + 1, T0 - 599)
    assert await store.first_use("v0=bb", T0 + 1, T0 - 599)
    # once older than twice the tolerance, a mark is forgotten (the request is stale by then)
    assert await store.first_use("v0=aa", T0 + 700, T0 + 100)


def test_a_message_carries_its_buttons_last_and_only_once() -> None:
    blocks = with_buttons([{"type": "divider"}] * 60, ("mute", "ack"), 12)
    assert len(blocks) == 50 and blocks[-1]["block_id"] == "relay-interactions"
    assert [e["value"] for e in blocks[-1]["elements"]] == ["12", "12"]
    again = with_buttons(blocks, ("ack",), 13)
    assert len(again) == 50 and [e["value"] for e in again[-1]["elements"]] == ["13"]


# ---------------------------------------------------------------- upgrading in place


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_database_of_the_previous_schema_upgrades_and_takes_clicks(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # the schema relay wrote before interactivity (migration 10)
    sent = (
        "INSERT INTO outbox (event_source, event_id, event_type, destination, pace_key, template,"
        " payload, status, created_at, next_attempt_at, channel_id, ts)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        ("anchor", "evt_1", "task.failed", "alerts", "k", "t", '{"text": "hi"}', "sent",
         T0, T0, "C0ALERTS1", "1.000001"),
    )  # fmt: skip
    store = store_at(9, backend, tmp_path, request, [sent])
    await store.open()
    try:
        assert await store.migrate() == VERSION
        found = await store.sent_row(1)
        assert found is not None and (found.channel_id, found.ts) == ("C0ALERTS1", "1.000001")
        assert found.row.step is None  # a message sent before: no buttons, nothing to click
        assert await store.first_use("v0=aa", T0, T0 - 600)
    finally:
        await store.close()


def test_the_example_configs_buttons_work_once_uncommented_and_set(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    text = (root / "config.example.yaml").read_text()
    assert "    # buttons: [mute, ack]\n" in text
    (tmp_path / "templates").mkdir()
    path = tmp_path / "relay.yaml"
    path.write_text(text.replace("    # buttons: [mute, ack]\n", "    buttons: [mute, ack]\n"))
    env = {
        "ANCHOR_WEBHOOK_SECRET": "secret",
        "DECK_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": SECRET,
    }
    loaded = load_config(path, env=env)
    assert [s.get_secret_value() for s in loaded.config.slack.signing_secrets] == [SECRET]
    assert [r.buttons for r in loaded.config.routes if r.buttons] == [["mute", "ack"]]
    report = check(build_runtime(loaded))
    assert (report.errors, report.warnings) == ([], [])
