"""The shared layout's `message(...)`: a card from a template's data, in Python.

Every built-in template ends in `message(status, title, summary=..., fields=[...], ...)` (see
`templates/_layout.j2`, which exports this function under that name). It builds the card the
template stands for, with the very filters a template would apply (`clip`, `plain`,
`field_list`, `button_list`, `error_text`, `tojson_block`, `context_text`), and returns it as
a mark the renderer replaces: by the card itself when the template rendered nothing else, or
by the card's JSON, so that whatever surrounds it in a template still renders a JSON document.

Written as a Jinja macro, this was half of a render's time (tens of filter calls through the
template runtime for every message); as a function, with no JSON written and read back, a
render costs a third fewer instructions (callgrind; bench/e2e.py measures the delivery rate).
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from typing import Any

from markupsafe import Markup

from relay.messages import Button, Card, Detail, Field
from relay.render import mrkdwn
from relay.render.escaping import current_event, raw_text, to_text, unjson
from relay.render.filters import (
    f_button_list,
    f_context_text,
    f_error_text,
    f_field_list,
    f_pairs,
    f_tojson_block,
)

# the card `message(...)` made in this render; the template's output holds `MARK` in its place
RENDERED: ContextVar[Card | None] = ContextVar("relay_rendered_card", default=None)
MARK = "\x00relay-card\x00"  # no template text or escaped value can hold a NUL


def _clip(value: Any, limit: int) -> str:
    """What `{{ value|clip(limit) }}` writes, as the text it stands for."""
    if hasattr(value, "__html__"):
        return mrkdwn.truncate_mrkdwn(unjson(value), limit)
    return mrkdwn.escape(mrkdwn.truncate(to_text(value), limit))


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def message(
    status: Any,
    title: Any,
    summary: Any = None,
    fields: Any = (),
    error: Any = None,
    sections: Any = (),
    details: Any = (),
    buttons: Any = (),
    context: Any = (),
    fact: Any = None,
) -> Markup:
    """The card of a message (its JSON, for the template's output)."""
    errors = f_error_text(error)
    code = [(label, f_tojson_block(value)) for label, value in f_pairs(details)]
    line = f_context_text(context, current_event())
    card = Card(
        status=raw_text(status) or "info",
        title=mrkdwn.truncate(raw_text(title), 150),
        fact=(_clip(fact, 500) or None) if fact else None,
        summary=(_clip(summary, 2900) or None) if summary else None,
        errors=(_clip(errors, 2900) or None) if errors else None,
        fields=tuple(
            Field(_clip(label, 80), _clip(value, 1800)) for label, value in f_field_list(fields)
        ),
        sections=tuple(_clip(s, 2900) for s in _list(sections) if s),
        details=tuple(Detail(_clip(label, 80), unjson(body)) for label, body in code if body),
        buttons=tuple(
            Button(mrkdwn.truncate(b["text"], 75), b["url"], b["style"] or None)
            for b in f_button_list(buttons)
        ),
        context=(unjson(line) or None) if line else None,
    )
    RENDERED.set(card)
    return Markup(MARK)


def output(rendered: str) -> tuple[Card | None, str]:
    """A template's output: the layout's card when it rendered that alone (the usual case:
    no JSON to write and read back), else the text with the card's JSON in its place."""
    card = RENDERED.get()
    if card is None:
        return None, rendered
    if rendered.strip() == MARK:
        return card, rendered
    return None, rendered.replace(MARK, json.dumps(card.to_json(), ensure_ascii=False))
