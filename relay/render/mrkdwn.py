"""Slack mrkdwn safety: escaping untrusted text, safe links and date tokens, safe truncation.

Event data is untrusted. It reaches Slack only through `escape` (so it can never form a control
sequence such as `<!channel>`, `<@U1>` or `<https://evil|label>`), through `link` (which checks
the URL and strips the label) or through `date_token`. `neutralize` is the last line of defence:
it escapes every `<...>` sequence in a text that the renderer did not produce itself.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

ELLIPSIS = "…"
FENCE = "```"

_UNSAFE_URL_CHARS = re.compile(r"[\s|<>\x00-\x1f\x7f]")
_LABEL_DROP = re.compile(r"[|<>]")
_SPACES = re.compile(r"\s+")
_ANGLED = re.compile(r"<[^<>]*>")
_DATE_FORMAT_DROP = re.compile(r"[|<>^\r\n]")


def escape(text: str) -> str:
    """Escape exactly the three characters Slack decodes; `&` first so nothing is doubled."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_angles(text: str) -> str:
    """Escape `<` and `>` only: for text whose `&` entities are already meant as entities."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


def safe_url(value: Any, max_length: int = 3000) -> str | None:
    """The URL if it is an absolute http(s) URL Slack can show as a link; otherwise None."""
    if type(value) is str:
        return _safe_text_url(value, max_length)
    return _safe_url(value, max_length)


# A URL is judged again at each step of a message (its button in the layout, the card, the
# chat's payload): remember the last few verdicts (a regex and urlsplit, a few µs each). Only
# for plain `str`: a Markup equal to it must come back as itself.
@functools.lru_cache(maxsize=256)
def _safe_text_url(value: str, max_length: int) -> str | None:
    return _safe_url(value, max_length)


def _safe_url(value: Any, max_length: int) -> str | None:
    if not isinstance(value, str) or not value or len(value) > max_length:
        return None
    if _UNSAFE_URL_CHARS.search(value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return value


def link_label(label: Any) -> str:
    """A label that cannot end or nest a link: `|<>` removed, whitespace folded, `&` escaped."""
    text = "" if label is None else str(label)
    return escape(_SPACES.sub(" ", _LABEL_DROP.sub("", text)).strip())


def link(url: Any, label: Any = None) -> str:
    """`<url|label>` for a safe URL; for an unsafe one only the escaped label (no link)."""
    target = safe_url(url)
    text = link_label(label)
    if target is None:
        return text
    return f"<{target}|{text}>" if text else f"<{target}>"


_DATE_FORMAT = "{date_short_pretty} {time}"


def date_token(when: datetime, fmt: str = _DATE_FORMAT) -> str:
    """`<!date^epoch^fmt|fallback>`: Slack shows it in each reader's own time zone."""
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    fallback = _utc_minute(aware.astimezone(UTC))
    clean = fmt if fmt == _DATE_FORMAT else _DATE_FORMAT_DROP.sub("", fmt) or _DATE_FORMAT
    epoch = int(aware.timestamp())
    if epoch < 0:  # Slack's date token takes an unsigned epoch: before 1970 stays plain text
        return fallback
    return f"<!date^{epoch}^{clean}|{fallback}>"


def _utc_minute(utc: datetime) -> str:
    """`utc.strftime("%Y-%m-%d %H:%M UTC")`, written directly for four-digit years (strftime
    goes through the C library's locale-aware formatting: most of a date token's cost)."""
    if 1000 <= utc.year <= 9999:
        return f"{utc.year}-{utc.month:02d}-{utc.day:02d} {utc.hour:02d}:{utc.minute:02d} UTC"
    return utc.strftime("%Y-%m-%d %H:%M UTC")


def truncate(text: str, limit: int) -> str:
    """At most `limit` characters; a cut is marked with `…`."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    return text[: limit - 1] + ELLIPSIS


def truncate_mrkdwn(text: str, limit: int) -> str:
    """Like `truncate`, but never cuts inside `<...>` or an `&entity;`, and closes a code block
    that the cut left open."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    reserve = len(ELLIPSIS) + (len(FENCE) + 1 if FENCE in text else 0)
    cut = text[: max(0, limit - reserve)]
    opened = cut.rfind("<")
    if opened > cut.rfind(">"):
        cut = cut[:opened]
    amp = cut.rfind("&")
    if amp >= 0 and ";" not in cut[amp:] and len(cut) - amp <= 8:
        cut = cut[:amp]
    out = cut + ELLIPSIS
    if text.count(FENCE) % 2 == 0 and cut.count(FENCE) % 2 == 1:
        out += "\n" + FENCE
    return out[:limit]


def neutralize(text: str, allowed: Collection[str] = ()) -> str:
    """Escape every `<` except those starting a whole control sequence listed in `allowed`.

    The renderer lists the links and dates its own filters produced; anything else that looks
    like a control sequence came from data by some path and is shown as text instead. A `>`
    alone cannot start a sequence and stays (it is mrkdwn's block quote).
    """
    if "<" not in text:  # most texts: nothing to look at
        return text
    found = _ANGLED.findall(text)
    if text.count("<") == len(found) and all(token in allowed for token in found):
        return text  # every `<` starts a sequence the renderer made: nothing to escape
    out: list[str] = []
    pos = 0
    for match in _ANGLED.finditer(text):
        out.append(text[pos : match.start()].replace("<", "&lt;"))
        token = match.group(0)
        out.append(token if token in allowed else escape_angles(token))
        pos = match.end()
    out.append(text[pos:].replace("<", "&lt;"))
    return "".join(out)


def control_sequences(text: str) -> list[str]:
    """The `<...>` sequences in a text (used to allow a trusted mention string)."""
    return _ANGLED.findall(text)
