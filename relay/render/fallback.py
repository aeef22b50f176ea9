"""The safe default message: what relay sends when no template could be used.

Built in plain Python, without Jinja, from the event's type, its provider text and its scalar
fields, every value escaped: it is always a valid message, so an event is never dropped
because of a template.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from relay.event import Event
from relay.render import humanize, mrkdwn
from relay.render.escaping import to_text
from relay.render.filters import is_empty


def default_message(event: Event) -> dict[str, Any]:
    """The safe default `{text, blocks}` of an event (not yet fitted to Slack's limits)."""
    source, kind = to_text(event.source)[:60], to_text(event.type)[:80]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{source} · {kind}"[:150]}}
    ]
    provider_text = event.text if isinstance(event.text, str) else ""
    if provider_text.strip():
        blocks.append(_section(mrkdwn.escape(mrkdwn.truncate(provider_text, 2000))))
    fields: list[dict[str, Any]] = []
    data = event.data if isinstance(event.data, Mapping) else {}
    for key, value in data.items():
        if isinstance(value, Mapping | list | tuple) or is_empty(value) or not str(key).strip():
            continue
        label = mrkdwn.escape(mrkdwn.truncate(str(key), 60))
        shown = mrkdwn.escape(mrkdwn.truncate(to_text(value), 300))
        fields.append({"type": "mrkdwn", "text": f"*{label}*\n{shown}"})
        if len(fields) == 10:
            break
    if fields:
        blocks.append({"type": "section", "fields": fields})
    context = [f"event `{mrkdwn.escape(humanize.short_id(event.id) or '?')}`"]
    if isinstance(event.created, datetime):
        context.append(mrkdwn.date_token(event.created))
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]}
    )
    summary = mrkdwn.truncate(provider_text.strip(), 500) if provider_text.strip() else ""
    text = f"{source} {kind}" + (f": {summary}" if summary else "")
    return {"text": mrkdwn.escape(text), "blocks": blocks}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}
