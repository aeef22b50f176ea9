"""Repeat suppression: the counter a repeated message carries when it is updated. Pure.

When the same fingerprint comes back within a route's `repeat.interval`, the worker updates the
first message instead of posting again; this module adds (or replaces) the context line
"Seen N times · first … · last …" on the newest occurrence's rendered message.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

from relay.records import JsonObject, Message
from relay.render.mrkdwn import date_token

COUNTER_BLOCK_ID = "relay-repeat"
_SUFFIX = re.compile(r" \(seen \d+ times\)$")


def _date(when: float) -> str:
    return date_token(datetime.fromtimestamp(when, UTC))


def with_counter(message: Message, count: int, first_at: float, last_at: float) -> Message:
    line = f":repeat: Seen {count} times · first {_date(first_at)} · last {_date(last_at)}"
    counter: JsonObject = {
        "type": "context",
        "block_id": COUNTER_BLOCK_ID,
        "elements": [{"type": "mrkdwn", "text": line}],
    }
    blocks = [b for b in message.blocks if b.get("block_id") != COUNTER_BLOCK_ID]
    if len(blocks) >= 50:
        blocks = blocks[:49]
    text = f"{_SUFFIX.sub('', message.text)} (seen {count} times)"
    return replace(message, text=text[:3000], blocks=(*blocks, counter))
