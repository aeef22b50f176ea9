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

from relay.blockkit import fit
from relay.conversation import key_value
from relay.event import Event
from relay.mrkdwn import escape, truncate_mrkdwn
from relay.store import DigestBatch, NewMessage

DIGEST_TEMPLATE = "<digest>"
_LINE = 280


def group_key(event: Event, by: Sequence[str]) -> str:
    return "|".join(key_value(k, event) or "" for k in by)


def _date(when: float) -> str:
    fallback = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when)}^{{date_short_pretty}} {{time}}|{fallback}>"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def build(batch: DigestBatch) -> NewMessage:
    items = batch.items
    if len(items) == 1:
        item = items[0]
        payload = {"text": item.payload["text"], "blocks": item.payload["blocks"]}
        return NewMessage(batch.destination, batch.pace_key, item.template, payload)
    kinds = Counter(item.event_type for item in items)
    mentions = sorted({m for item in items if (m := item.payload.get("mention"))})
    title = _plural(len(items), "event")
    if len(kinds) == 1:
        title += f": {next(iter(kinds))}"
    counts = ", ".join(f"{n} x `{escape(kind)}`" for kind, n in kinds.most_common())
    lines = [
        "• " + truncate_mrkdwn(str(item.payload.get("line") or item.payload["text"]), _LINE)
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
    payload = fit({"text": text, "blocks": blocks})
    return NewMessage(batch.destination, batch.pace_key, DIGEST_TEMPLATE, payload)
