"""A button click as Slack sends it (`block_actions`), read into a typed `Click`. Pure.

Slack posts `application/x-www-form-urlencoded` with one field, `payload`, a JSON document. Only
what relay acts on is read: the clicking user's id (checked against Slack's id form: it is what
the updated message shows, as a mention), the channel and ts of the message, and the one action
(its `action_id`, one of relay's, and its `value`, which relay set: an outbox row id, and for
Unmute the silence's id too). Names, the message's text and blocks and everything else in the
payload are ignored. Anything else is `MalformedClick`, an action that is not relay's
`UnknownAction`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs

MUTE_ACTION = "relay-mute"
ACK_ACTION = "relay-ack"
UNMUTE_ACTION = "relay-unmute"

# Slack's ids: users U… or W… (Enterprise Grid), channels C…, G…, D…; upper-case letters, digits
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,20}$")
MESSAGE_TS = re.compile(r"^[0-9]{1,12}\.[0-9]{1,9}$")
_ROW = re.compile(r"^[1-9][0-9]{0,17}$")
_SILENCE = re.compile(r"^sil_[0-9a-f]{16}$")


class Action(StrEnum):
    MUTE = "mute"
    ACK = "ack"
    UNMUTE = "unmute"


_ACTIONS = {MUTE_ACTION: Action.MUTE, ACK_ACTION: Action.ACK, UNMUTE_ACTION: Action.UNMUTE}


class MalformedClick(ValueError):
    """Not a button click relay can read; the message says what was wrong (no payload text)."""


class UnknownAction(ValueError):
    """A click on a button that is not one of relay's."""


@dataclass(frozen=True, slots=True)
class Click:
    action: Action
    user_id: str  # Slack's id of who clicked: shown only as `<@user_id>`
    channel_id: str
    message_ts: str
    row_id: int  # the outbox row of the message (relay's records decide what it is)
    silence_id: str | None = None  # Unmute: the silence the Mute made


def button_value(row_id: int, silence_id: str | None = None) -> str:
    """The `value` relay gives a button: its message's outbox row, and for Unmute the silence."""
    return str(row_id) if silence_id is None else f"{row_id}:{silence_id}"


def parse_click(body: bytes) -> Click:
    """The click a form-encoded `payload=<JSON>` body carries."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        raise MalformedClick("the body is not a form (payload=<JSON>)") from None
    values = form.get("payload", [])
    if len(values) != 1:
        raise MalformedClick("the form needs exactly one `payload` field")
    try:
        document = json.loads(values[0])
    except (ValueError, RecursionError):
        raise MalformedClick("`payload` is not JSON") from None
    if not isinstance(document, dict):
        raise MalformedClick("`payload` is not a JSON object")
    if document.get("type") != "block_actions":
        raise MalformedClick("only `block_actions` (a button click) is handled")
    user_id = _text(_object(document, "user"), "id", USER_ID, "user.id")
    container = _object(document, "container")
    channel_id = _text(container, "channel_id", CHANNEL_ID, "container.channel_id")
    message_ts = _text(container, "message_ts", MESSAGE_TS, "container.message_ts")
    actions = document.get("actions")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
        raise MalformedClick("`actions` must hold exactly one action")
    action = actions[0]
    action_id = action.get("action_id")
    if not isinstance(action_id, str):
        raise MalformedClick("actions[0].action_id is missing")
    if action_id not in _ACTIONS:
        raise UnknownAction("the button is not one of relay's")
    value = action.get("value")
    if not isinstance(value, str):
        raise MalformedClick("actions[0].value is missing")
    kind = _ACTIONS[action_id]
    row, _, silence = value.partition(":")
    if not _ROW.fullmatch(row):
        raise MalformedClick("actions[0].value is not a value relay gave")
    if kind is Action.UNMUTE and not _SILENCE.fullmatch(silence):
        raise MalformedClick("actions[0].value is not a value relay gave")
    if kind is not Action.UNMUTE and silence:
        raise MalformedClick("actions[0].value is not a value relay gave")
    return Click(kind, user_id, channel_id, message_ts, int(row), silence or None)


def _object(document: dict[str, Any], name: str) -> dict[str, Any]:
    found = document.get(name)
    if not isinstance(found, dict):
        raise MalformedClick(f"`{name}` is missing")
    return found


def _text(document: dict[str, Any], name: str, form: re.Pattern[str], where: str) -> str:
    found = document.get(name)
    if not isinstance(found, str) or not form.fullmatch(found):
        raise MalformedClick(f"{where} is missing or not a Slack id")
    return found
