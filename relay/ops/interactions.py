"""What a Slack button click does (relay.interactions): Mute 1h creates a silence, Unmute
expires it, I'm on it only says so; each answers the message update to make.

A click names an outbox row (the button's value); relay trusts only its own record of it: the
row must exist, carry the button clicked, and be the very message Slack says was clicked (same
channel and ts). A Mute's silence is scoped to what the row says: its destination and its
repeat key (else its thread key), else its event's source, type and main id (`Step.main`).
Unmute expires only a silence that has exactly that scope.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from relay.conversation.repeat import with_counter
from relay.interactions import Action, Click, Notice, NoticeKind, with_notice
from relay.ops import silences as service
from relay.records import OutboxRow
from relay.render.formats.slack import payload
from relay.silences import Silence, SilenceError, SilenceRequest, parse_request
from relay.store.interface import Store

log = logging.getLogger("relay.interactions")

MUTE_FOR = "1h"


class ClickRefused(Exception):
    """A click relay will not act on: `code` and `detail` go in the 400 answer."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class MessageUpdate:
    """The chat.update a click leads to."""

    channel_id: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]


def _glob_literal(text: str) -> str:
    # an event type is matched as a glob: its own `*`, `?` and `[` must match only themselves
    return re.sub(r"([*?\[])", r"[\1]", text)


def mute_request(row: OutboxRow, user_id: str) -> SilenceRequest:
    """The silence Mute 1h creates for the message of `row`."""
    step = row.step
    key = (step.repeat or step.thread) if step is not None else None
    body: dict[str, Any] = {
        "destination": row.destination,
        "duration": MUTE_FOR,
        "created_by": user_id,
        "comment": f"Mute 1h clicked in Slack (outbox message {row.id})",
    }
    if key is not None:
        body["key"] = key
    else:
        when: list[dict[str, Any]] = []
        if step is not None and step.main is not None:
            path, value = step.main
            # data.task_id may be 42 or "42": an id the provider sent as a number matches both
            alike: list[Any] = [value, int(value)] if value.isdigit() and len(value) < 16 else []
            when.append(
                {"path": path, "one_of": alike} if alike else {"path": path, "equals": value}
            )
        body["match"] = {
            "source": [row.event_source],
            "type": [_glob_literal(row.event_type)],
            "when": when,
        }
    return parse_request(body)


def _scoped_alike(silence: Silence, wanted: SilenceRequest) -> bool:
    return (
        silence.key == wanted.key
        and silence.destination == wanted.destination
        and silence.match == wanted.match
    )


async def act(store: Store, click: Click, now: float, destinations: Sequence[str]) -> MessageUpdate:
    """Do what the click asks and say how the message now reads; `ClickRefused` if relay's
    records do not back it (nothing is changed then)."""
    sent = await store.sent_row(click.row_id)
    if sent is None or (sent.channel_id, sent.ts) != (click.channel_id, click.message_ts):
        raise ClickRefused("unknown_message", "relay sent no such message")
    row = sent.row
    buttons = row.step.buttons if row.step is not None else ()
    needs = "mute" if click.action in (Action.MUTE, Action.UNMUTE) else "ack"
    if needs not in buttons:
        raise ClickRefused("unknown_action", "this message has no such button")
    if click.action is Action.MUTE:
        try:
            silence = await service.create(
                store, mute_request(row, click.user_id), now, destinations
            )
        except SilenceError as exc:  # the destination was removed by a reload, say
            raise ClickRefused("invalid_silence", str(exc)) from None
        notice = Notice(NoticeKind.MUTED, click.user_id, silence.ends_at, silence.id)
        log.info(
            "muted from Slack",
            extra={"silence": silence.id, "user": click.user_id, "outbox_id": row.id},
        )
    elif click.action is Action.UNMUTE:
        assert click.silence_id is not None
        found = await store.silence(click.silence_id)
        if found is None or not _scoped_alike(found, mute_request(row, click.user_id)):
            raise ClickRefused("unknown_silence", "no silence of this message has this id")
        await service.expire(store, found.id, now)
        notice = Notice(NoticeKind.UNMUTED, click.user_id)
        log.info(
            "unmuted from Slack",
            extra={"silence": found.id, "user": click.user_id, "outbox_id": row.id},
        )
    else:
        notice = Notice(NoticeKind.ACKED, click.user_id)
        log.info("acknowledged from Slack", extra={"user": click.user_id, "outbox_id": row.id})
    message = row.message
    if sent.repeat is not None:  # the message shows its counter: keep it
        message = with_counter(message, *sent.repeat)
    document = payload(message)
    blocks = with_notice(list(document["blocks"]), notice, buttons, row.id)
    return MessageUpdate(click.channel_id, click.message_ts, document["text"], blocks)
