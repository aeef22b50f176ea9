"""The filters and globals templates use: links, dates, quotes, code, humanized values, lists
of fields, buttons and errors, and Jinja's `join`, `~` and `tojson` made Slack-safe.

Every filter takes anything (event data is untrusted and loosely typed) and returns something
showable: "" or an empty list when the value cannot be read, so a template omits that fact.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from markupsafe import Markup

from relay.event import Event, dig, parse_time
from relay.render import humanize, mrkdwn
from relay.render.escaping import (
    FULL_IDS,
    SlackText,
    allow,
    json_escape,
    mrkdwn_json,
    raw_text,
    to_text,
    unjson,
)
from relay.render.prettyjson import pretty as _pretty

_STYLES = ("primary", "danger")


class TemplateOutputError(ValueError):
    """A template rendered something that is not a message document."""


def f_link(url: Any, label: Any = None) -> SlackText:
    """`<url|label>` for an http(s) URL; only the escaped label when the URL is unsafe."""
    text = mrkdwn.link(url, raw_text(label) if label is not None else None)
    if text.startswith("<"):
        allow(text)
    return SlackText(json_escape(text))


def f_plain(value: Any, limit: int | None = None) -> SlackText:
    """For plain_text objects: JSON-escaped only (Slack does not parse plain_text)."""
    text = raw_text(value)
    if limit is not None:
        text = mrkdwn.truncate(text, limit)
    return SlackText(json_escape(text))


def f_clip(value: Any, limit: int = 300) -> Any:
    """At most `limit` characters, cut with `…`; Markup is cut without breaking a sequence."""
    if hasattr(value, "__html__"):
        return SlackText(json_escape(mrkdwn.truncate_mrkdwn(unjson(value), limit)))
    return mrkdwn.truncate(to_text(value), limit)


def f_slack_date(value: Any, fmt: str = "{date_short_pretty} {time}") -> SlackText:
    """A date shown in each reader's time zone; "" when the value is not a time."""
    when = value if isinstance(value, datetime) else parse_time(value)
    if when is None:
        return SlackText("")
    return SlackText(json_escape(allow(mrkdwn.date_token(when, fmt))))


def f_quote(value: Any, limit: int = 1500) -> SlackText:
    """A mrkdwn block quote of the value (each line prefixed with `>`)."""
    text = mrkdwn.truncate(raw_text(value).strip(), limit)
    if not text:
        return SlackText("")
    lines = [">" + mrkdwn.escape(line) for line in text.splitlines()]
    return SlackText(json_escape("\n".join(lines)))


def f_code(value: Any, limit: int = 80) -> str:
    """Inline code `value` (backticks inside replaced); "" when empty."""
    text = mrkdwn.truncate(raw_text(value).strip().replace("`", "\u02cb"), limit)
    return f"`{text}`" if text else ""


def f_tojson_block(value: Any, limit: int = 2500) -> SlackText:
    """Pretty JSON (or the text itself) for inside a code block, cut to `limit`."""
    if value is None or value == "" or value == [] or value == {}:
        return SlackText("")
    if isinstance(value, str):
        text = value
        try:
            decoded = json.loads(value)
            if isinstance(decoded, dict | list):
                text = _pretty(decoded) or json.dumps(decoded, indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):
            pass
    else:
        try:
            text = _pretty(value) or json.dumps(value, indent=2, ensure_ascii=False, default=str)
        except (ValueError, TypeError, RecursionError):
            text = "(too deeply nested to show)"
    # A ``` inside the value would end the code block early.
    text = mrkdwn.truncate(text, limit).replace("```", "``\u200b`")
    return SlackText(mrkdwn_json(text))


def f_safe_url(value: Any) -> str:
    return mrkdwn.safe_url(value) or ""


def f_count(value: Any) -> int | None:
    """How many: the length of a list or mapping, an int as it is; None otherwise."""
    if isinstance(value, list | tuple | Mapping):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def is_empty(value: Any) -> bool:
    if value is None:
        return True
    kind = type(value)
    if kind is str or kind is list or kind is tuple or kind is dict:
        return len(value) == 0  # what follows, without the ABC check for Mapping
    return isinstance(value, str | list | tuple | Mapping) and len(value) == 0


def f_first(*values: Any) -> Any:
    """The first value that is not None or empty (0 and false count as values)."""
    for value in values:
        if not is_empty(value):
            return value
    return None


def f_as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def f_as_dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def f_text(value: Any) -> str:
    """A scalar as text; "" for containers (so a wrong-typed field shows nothing)."""
    if type(value) is str:
        return value
    if isinstance(value, Mapping | list | tuple):
        return ""
    return to_text(value)


_STATUS_EMOJI = {
    "success": ":white_check_mark:",
    "failure": ":x:",
    "warning": ":warning:",
    "waiting": ":raising_hand:",
    "attention": ":rotating_light:",
    "info": ":information_source:",
    "started": ":arrow_forward:",
    "running": ":arrows_counterclockwise:",
    "queued": ":hourglass_flowing_sand:",
    "stopping": ":double_vertical_bar:",
    "cancelled": ":no_entry_sign:",
    "created": ":sparkles:",
    "updated": ":pencil2:",
    "deleted": ":wastebasket:",
    "healed": ":adhesive_bandage:",
    "recording": ":movie_camera:",
    "idle": ":zzz:",
    "key": ":key:",
    "file": ":page_facing_up:",
}


def f_status_emoji(status: Any) -> str:
    return _STATUS_EMOJI.get(to_text(status), ":information_source:")


def f_field_list(fields: Any) -> list[tuple[Any, Any]]:
    """`[(label, value), {label, value}, ...]` -> pairs whose value is not empty."""
    out: list[tuple[Any, Any]] = []
    for item in fields if isinstance(fields, list | tuple) else []:
        if type(item) is tuple and len(item) == 2:  # the usual form, checked first (cheaper)
            label, value = item
        elif isinstance(item, Mapping):
            label, value = item.get("label"), item.get("value")
        elif isinstance(item, list | tuple) and len(item) == 2:
            label, value = item
        else:
            continue
        if is_empty(value) or (hasattr(value, "__html__") and not str(value)):
            continue
        if isinstance(value, list | tuple):
            value = ", ".join(to_text(v) for v in value[:20] if not isinstance(v, Mapping | list))
        elif type(value) is not str and isinstance(value, Mapping):
            value = json.dumps(value, ensure_ascii=False, default=str)
        if value == "":
            continue
        out.append((label, value))
    return out


def f_button_list(buttons: Any) -> list[dict[str, str]]:
    """`[(label, url[, style]), {text, url, style}]` -> buttons with safe, distinct URLs."""
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for item in buttons if isinstance(buttons, list | tuple) else []:
        if type(item) is tuple and len(item) in (2, 3):  # the usual form, checked first
            label, url, style = item[0], item[1], item[2] if len(item) == 3 else None
        elif isinstance(item, Mapping):
            label, url, style = item.get("text"), item.get("url"), item.get("style")
        elif isinstance(item, list | tuple) and len(item) in (2, 3):
            label, url, style = item[0], item[1], item[2] if len(item) == 3 else None
        else:
            continue
        safe = mrkdwn.safe_url(url)
        text = raw_text(label).strip()
        if safe is None or safe in seen or not text:
            continue
        seen.add(safe)
        out.append({"text": text, "url": safe, "style": style if style in _STYLES else ""})
    return out[:25]


def _error_items(value: Any, depth: int = 0) -> Iterator[dict[str, str]]:
    if is_empty(value) or depth > 3:
        return
    if isinstance(value, list | tuple):
        for item in value:
            yield from _error_items(item, depth + 1)
    elif isinstance(value, Mapping):
        message = f_first(
            *(value.get(k) for k in ("message", "detail", "description", "reason", "error"))
        )
        if isinstance(message, Mapping | list):
            message = json.dumps(message, ensure_ascii=False, default=str)[:500]
        item = {
            "type": f_text(f_first(value.get("type"), value.get("kind"), value.get("name"))),
            "code": f_text(value.get("code")),
            "message": f_text(message),
            "field": f_text(value.get("field")),
        }
        if any(item.values()):
            yield item
    else:
        yield {"type": "", "code": "", "message": to_text(value), "field": ""}


def f_error_list(value: Any) -> list[dict[str, str]]:
    """Errors in any shape (string, `{type, code, message, field}`, a list) -> uniform dicts."""
    return list(_error_items(value))


def f_error_text(value: Any, limit: int = 5) -> SlackText:
    """The errors as mrkdwn: type and code in bold/code, then the message quoted."""
    errors = f_error_list(value)
    parts: list[str] = []
    for err in errors[:limit]:
        head = [f"*{mrkdwn.escape(humanize.words(err['type']) or 'Error')}*"]
        if err["code"]:
            head.append(mrkdwn.escape(f_code(err["code"])))
        if err["field"]:
            head.append("field " + mrkdwn.escape(f_code(err["field"])))
        lines = [":rotating_light: " + " · ".join(head)]
        message = mrkdwn.truncate(err["message"].strip(), 1000)
        lines += [">" + mrkdwn.escape(line) for line in message.splitlines() if line.strip()]
        parts.append("\n".join(lines))
    if len(errors) > limit:
        parts.append(f"_…and {len(errors) - limit} more_")
    return SlackText(json_escape("\n".join(parts)))


def f_short_id(value: Any, length: int = humanize.SHORT_ID_WHOLE) -> str:
    """`humanize.short_id`, or the whole id while rendering with `full_ids`."""
    if FULL_IDS.get():
        return humanize.id_text(value)
    return humanize.short_id(value, length)


def f_context_text(extra: Any, event: Any) -> SlackText:
    """The context line: the template's items, then source · short event id · event time."""
    parts: list[str] = []
    for item in extra if isinstance(extra, list | tuple) else []:
        if not is_empty(item) and str(item):
            parts.append(str(item) if hasattr(item, "__html__") else SlackText.escape(item))
    if isinstance(event, Event):
        parts.append(mrkdwn_json(event.source))
        short = f_short_id(event.id)
        if short:
            parts.append(mrkdwn_json(f_code(short)))
        date = f_slack_date(event.created)
        if date:
            parts.append(str(date))
    return SlackText(" · ".join(parts))


def f_pairs(items: Any) -> list[tuple[Any, Any]]:
    """`[(title, value), ...]` with empty values left out (for details code blocks)."""
    out: list[tuple[Any, Any]] = []
    for item in items if isinstance(items, list | tuple) else []:
        if isinstance(item, list | tuple) and len(item) == 2 and not is_empty(item[1]):
            out.append((item[0], item[1]))
    return out


def f_join(value: Any, d: Any = "", attribute: Any = None) -> Any:
    """Jinja's `join`, escaping plain items the Slack way when any item is Markup."""
    items = [dig(v, str(attribute)) if attribute is not None else v for v in value]
    if any(hasattr(v, "__html__") for v in [*items, d]):
        sep = d if hasattr(d, "__html__") else SlackText.escape(d)
        return SlackText(sep).join(items)
    return to_text(d).join(to_text(v) for v in items)


def _deep_escape(value: Any) -> Any:
    if isinstance(value, str):
        return mrkdwn.escape(value)
    if isinstance(value, Mapping):
        return {mrkdwn.escape(str(k)): _deep_escape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_deep_escape(v) for v in value]
    return value


def f_tojson(value: Any) -> Markup:
    """A JSON value whose strings are mrkdwn-escaped (for `"text": {{ x|tojson }}`)."""
    return Markup(json.dumps(_deep_escape(value), ensure_ascii=False, default=str))


def f_safe(value: Any) -> Any:
    raise TemplateOutputError(
        "the 'safe' filter is disabled: event data is always escaped; use link(), plain or "
        "write the mrkdwn in the template itself"
    )


def f_concat(parts: Iterable[Any]) -> Any:
    """`a ~ b`: plain text stays plain; with any Markup part the plain parts are escaped."""
    items = list(parts)
    if any(hasattr(v, "__html__") for v in items):
        return SlackText("").join(items)
    return "".join(to_text(v) for v in items)


FILTERS: dict[str, Any] = {
    "link": f_link,
    "plain": f_plain,
    "clip": f_clip,
    "slack_date": f_slack_date,
    "quote": f_quote,
    "code": f_code,
    "tojson_block": f_tojson_block,
    "safe_url": f_safe_url,
    "count": f_count,
    "first": f_first,
    "as_list": f_as_list,
    "as_dict": f_as_dict,
    "text": f_text,
    "dig": dig,
    "duration": humanize.duration,
    "bytes": humanize.filesize,
    "money": humanize.money,
    "short_id": f_short_id,
    "words": humanize.words,
    "number": humanize.number,
    "plural": humanize.plural,
    "percent": humanize.percent,
    "bar": humanize.bar,
    "between": humanize.between,
    "status_emoji": f_status_emoji,
    "error_list": f_error_list,
    "error_text": f_error_text,
    "field_list": f_field_list,
    "button_list": f_button_list,
    "context_text": f_context_text,
    "pairs": f_pairs,
    "join": f_join,
    "tojson": f_tojson,
    "safe": f_safe,
}
