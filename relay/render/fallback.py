"""The safe default message: what relay sends when no template could be used.

Built in plain Python, without Jinja, from the event's type, its provider text and its scalar
fields, every value escaped: it is always a valid message, so an event is never dropped
because of a template.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from relay.event import Event
from relay.messages import Card, Field
from relay.render import humanize, mrkdwn
from relay.render.escaping import to_text
from relay.render.filters import is_empty


def default_message(event: Event) -> Card:
    """The safe default card of an event: its source and type, the provider's text, up to ten
    of its scalar fields, its id and time."""
    source, kind = to_text(event.source)[:60], to_text(event.type)[:80]
    provider_text = event.text.strip() if isinstance(event.text, str) else ""
    fields: list[Field] = []
    data = event.data if isinstance(event.data, Mapping) else {}
    for key, value in data.items():
        if isinstance(value, Mapping | list | tuple) or is_empty(value) or not str(key).strip():
            continue
        label = mrkdwn.escape(mrkdwn.truncate(str(key), 60))
        fields.append(Field(label, mrkdwn.escape(mrkdwn.truncate(to_text(value), 300))))
        if len(fields) == 10:
            break
    context = [f"event `{mrkdwn.escape(humanize.short_id(event.id) or '?')}`"]
    if isinstance(event.created, datetime):
        context.append(mrkdwn.date_token(event.created))
    return Card(
        status="info",
        title=f"{source} · {kind}",
        fact=mrkdwn.escape(mrkdwn.truncate(provider_text, 500)) if provider_text else None,
        summary=mrkdwn.escape(mrkdwn.truncate(provider_text, 2000)) if provider_text else None,
        fields=tuple(fields),
        context=" · ".join(context),
    )
