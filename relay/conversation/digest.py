"""Digests: many events of one route and group become one message. Pure.

`group_key` computes which group an event joins from the route's `group.by` keys. `build` turns
a due batch into the message that is posted: the lone item's own rendered message when only one
event arrived in the window, else one digest with the count per type, the first `show` events as
a compact list (each line is the event's own notification text, already escaped when it was
rendered) and "…and M more".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from relay.conversation.steps import key_value
from relay.event import Event
from relay.records import DigestBatch, Message, NewMessage
from relay.render.blockkit import fit
from relay.render.mrkdwn import date_token, escape, truncate_mrkdwn

DIGEST_TEMPLATE = "<digest>"
_LINE = 280


def group_key(event: Event, by: Sequence[str]) -> str:
    return "|".join(key_value(k, event) or "" for k in by)


def _date(when: float) -> str:
    return date_token(datetime.fromtimestamp(when, UTC))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def build(batch: DigestBatch) -> NewMessage:
    items = batch.items
    if len(items) == 1:
        item = items[0]
        alone = Message(item.message.text, item.message.blocks)
        return NewMessage(batch.destination, batch.pace_key, item.template, alone)
    kinds = Counter(item.event_type for item in items)
    mentions = sorted({m for item in items if (m := item.message.mention)})
    title = _plural(len(items), "event")
    if len(kinds) == 1:
        title += f": {next(iter(kinds))}"
    counts = ", ".join(f"{n} x `{escape(kind)}`" for kind, n in kinds.most_common())
    lines = [
        "• " + truncate_mrkdwn(item.message.line or item.message.text, _LINE)
        for item in items[: batch.show]
    ]
    more = len(items) - batch.show
    if more > 0:
        lines.append(f"…and {_plural(more, 'more event')}")
    first, last = items[0].created_at, items[-1].created_at
    blocks: list[dict[str, Any]] = []
    if mentions:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": " ".join(mentions)}})
    blocks += [
        {"type": "header", "text": {"type": "plain_text", "text": f":package: {title}"[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": counts[:2900]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:2900]}},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"Digest of route `{escape(batch.route)}` · "
                    f"{_date(first)} to {_date(last)}",
                }
            ],
        },
    ]
    text = " ".join([*mentions, f":package: {title}"])
    fitted = fit({"text": text, "blocks": blocks})
    message = Message(fitted["text"], tuple(fitted["blocks"]))
    return NewMessage(batch.destination, batch.pace_key, DIGEST_TEMPLATE, message)
