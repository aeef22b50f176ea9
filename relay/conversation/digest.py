"""Digests: many events of one route and group become one message. Pure.

`group_key` computes which group an event joins from the route's `group.by` keys. `build` turns
a due batch into the message that is posted: the lone item's own rendered message when only one
event arrived in the window, else one digest with the count per type, the first `show` events as
a compact list (each line is the event's own notification text, already escaped when it was
rendered) and "…and M more".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from relay.conversation.steps import key_value
from relay.event import Event
from relay.messages import Blocks, Card, Message
from relay.records import DigestBatch, NewMessage
from relay.render.markup import status_shortcode
from relay.render.mrkdwn import date_token, escape, truncate_mrkdwn

DIGEST_TEMPLATE = "<digest>"
# a mention an earlier relay stored in Slack's form: `<!subteam^S1>`, `<@U1>`, `<!here>`
_LEGACY = re.compile(r"^<(!subteam\^|@|!)([^>]*)>$")
_LINE = 280


def group_key(event: Event, by: Sequence[str]) -> str:
    return "|".join(key_value(k, event) or "" for k in by)


def _date(when: float) -> str:
    return date_token(datetime.fromtimestamp(when, UTC))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def line(message: Message) -> str:
    """How a digest lists one message: its notification text, without its mentions."""
    if isinstance(message, Card):
        text = f"{status_shortcode(message.status)} {escape(message.title)}"
        return text + (f" — {message.fact}" if message.fact else "")
    return message.line or message.text


def _mentions(message: Message) -> tuple[str, ...]:
    if isinstance(message, Blocks) and message.legacy_mention:
        # stored by an earlier relay in Slack's form: read back as the config's names
        found = (_LEGACY.match(token) for token in message.legacy_mention.split())
        return tuple(
            ("@" if m.group(1) == "!" else "") + m.group(2) for m in found if m is not None
        )
    return message.mentions


def build(batch: DigestBatch) -> NewMessage:
    """The message a due digest group posts: the lone item's own, or the digest card."""
    items = batch.items
    if len(items) == 1:
        item = items[0]
        return NewMessage(batch.destination, batch.pace_key, item.template, item.message)
    kinds = Counter(item.event_type for item in items)
    mentions = tuple(sorted({name for item in items for name in _mentions(item.message)}))
    title = _plural(len(items), "event")
    if len(kinds) == 1:
        title += f": {next(iter(kinds))}"
    counts = ", ".join(f"{n} x `{escape(kind)}`" for kind, n in kinds.most_common())
    lines = ["• " + truncate_mrkdwn(line(item.message), _LINE) for item in items[: batch.show]]
    more = len(items) - batch.show
    if more > 0:
        lines.append(f"…and {_plural(more, 'more event')}")
    first, last = items[0].created_at, items[-1].created_at
    card = Card(
        status="digest",
        title=title,
        sections=(counts[:2900], "\n".join(lines)[:2900]),
        context=f"Digest of route `{escape(batch.route)}` · {_date(first)} to {_date(last)}",
        mentions=mentions,
    )
    return NewMessage(batch.destination, batch.pace_key, DIGEST_TEMPLATE, card)
