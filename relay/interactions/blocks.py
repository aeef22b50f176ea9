"""The Block Kit relay adds to a Slack message for interactivity. Pure.

`with_buttons` appends the route's buttons (Mute 1h, I'm on it) to a message as it is sent;
`with_notice` replaces them, once someone clicked, with a line saying who did what, and the
buttons that still make sense (Unmute after a Mute). Both work on the `{text, blocks}` a message
renders to (`relay.render.formats.slack.payload`) and keep within Slack's 50 blocks.

The notice is made of relay's own words, a `<@USER_ID>` mention of the clicking user (an id
`relay.interactions.clicks` checked against Slack's id form) and a time relay formats: no text
from an event or a payload's name fields ever reaches it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from relay.interactions.clicks import (
    ACK_ACTION,
    MUTE_ACTION,
    UNMUTE_ACTION,
    USER_ID,
    button_value,
)

BLOCK_ID = "relay-interactions"  # the actions block relay owns on a message
NOTICE_BLOCK_ID = "relay-interaction-notice"
MAX_BLOCKS = 50

_LABELS = {"mute": (MUTE_ACTION, "Mute 1h"), "ack": (ACK_ACTION, "I'm on it")}


class NoticeKind(StrEnum):
    MUTED = "muted"
    ACKED = "acked"
    UNMUTED = "unmuted"


@dataclass(frozen=True, slots=True)
class Notice:
    """Who did what to a message: the text is built from these fields only."""

    kind: NoticeKind
    user_id: str
    until: float | None = None  # MUTED: when the silence ends
    silence_id: str | None = None  # MUTED: what Unmute expires

    def text(self) -> str:
        if not USER_ID.fullmatch(self.user_id):  # never a mention of anything but a user id
            raise ValueError("not a Slack user id")
        who = f"<@{self.user_id}>"
        if self.kind is NoticeKind.MUTED:
            assert self.until is not None
            until = datetime.fromtimestamp(self.until, UTC).strftime("%H:%M UTC")
            return f":no_bell: Muted by {who} until {until}"
        if self.kind is NoticeKind.ACKED:
            return f":eyes: {who} is on it"
        return f":bell: Unmuted by {who}"


def _button(action_id: str, label: str, value: str) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label, "emoji": True},
        "value": value,
    }


def _without_ours(blocks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in blocks if b.get("block_id") not in (BLOCK_ID, NOTICE_BLOCK_ID)]


def _actions(elements: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "actions", "block_id": BLOCK_ID, "elements": elements}


def with_buttons(
    blocks: Sequence[dict[str, Any]], buttons: Sequence[str], row_id: int
) -> list[dict[str, Any]]:
    """The message's blocks and, last, the buttons (`mute`, `ack`) whose clicks name `row_id`."""
    kept = _without_ours(blocks)
    elements = [
        _button(*_LABELS[name], button_value(row_id)) for name in buttons if name in _LABELS
    ]
    if not elements:
        return kept
    return [*kept[: MAX_BLOCKS - 1], _actions(elements)]


def with_notice(
    blocks: Sequence[dict[str, Any]], notice: Notice, buttons: Sequence[str], row_id: int
) -> list[dict[str, Any]]:
    """The message's blocks with the notice of a click, then the buttons left to click: Unmute
    after a Mute; after I'm on it or Unmute, the route's buttons but the one just clicked."""
    line = {
        "type": "context",
        "block_id": NOTICE_BLOCK_ID,
        "elements": [{"type": "mrkdwn", "text": notice.text()}],
    }
    kept = _without_ours(blocks)[: MAX_BLOCKS - 2]
    if notice.kind is NoticeKind.MUTED:
        assert notice.silence_id is not None
        value = button_value(row_id, notice.silence_id)
        return [*kept, line, _actions([_button(UNMUTE_ACTION, "Unmute", value)])]
    left = [b for b in buttons if not (notice.kind is NoticeKind.ACKED and b == "ack")]
    with_left = with_buttons([], left, row_id)
    return [*kept, line, *with_left]
