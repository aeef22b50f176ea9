"""Discord markdown: relay's markup spans written the way Discord reads them, within a length.

Every `Text` span is escaped (`escape`): a backslash before each character Discord's markdown
gives a meaning (`\\ * _ ~ | > < # - + [ ] ( )` and backticks), so event text cannot format,
quote, head, list, spoil or mask a link, and cannot form `<@id>`, `<#id>`, `<@&id>`, `<:emoji:id>`
or `<t:...>`; `://` gets a backslash too (`https\\://`), so a URL in event text is shown, not
linked; and `@` is followed by a zero-width joiner, so `@everyone` or `@name` does not even look
like a mention (pings are governed by `allowed_mentions` alone). Discord reads a backslash
before any punctuation as "this character, as it is", so the text reads unchanged.

Only relay's own spans become markup: `Styled` as `**bold**`, `_italic_`, `~~strike~~`;
`Code` in backticks (a backtick inside inline code becomes U+02CB, a look-alike, and a fence
inside a block is broken by a zero-width space, so code cannot end early); `Link` as
`[label](url)` (parentheses in the URL percent-encoded), or `<url>` when its label is empty
or a URL;
`Date` as `<t:EPOCH:f>`, shown in the reader's time zone; `Emoji` as Unicode; `Quote` as `> `.

`write(spans, limit)` keeps the result within `limit` (in UTF-16 units, `size`): it cuts at a
span, or inside a text, code or styled span, never inside an escape or a link, and ends with
"…". `clean` is the last pass over a payload: lone surrogates become U+FFFD and control
characters other than newline and tab are dropped (neither survives JSON to Discord). Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from relay.event import JsonValue
from relay.render.markup import Break, Code, Date, Emoji, Link, Quote, Span, Styled, Text, plain

ZERO_WIDTH = "\u200b"
JOINER = "\u200d"
ELLIPSIS = "…"
_SPECIAL = re.compile(r"[\\*_~|><#\-+\[\]()`]")
_MARKERS = {"bold": "**", "italic": "_", "strike": "~~"}
_UNSAFE = re.compile(r"[\ud800-\udfff]|[\x00-\x08\x0b-\x1f\x7f]")


def size(text: str) -> int:
    """Length in UTF-16 code units: what a JavaScript client counts, never less than the
    number of characters."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def escape(text: str) -> str:
    """Untrusted text as Discord markdown that reads as the text and means nothing else."""
    escaped = _SPECIAL.sub(lambda found: "\\" + found.group(0), text)
    return neutral(escaped.replace("://", "\\://"))


def neutral(text: str) -> str:
    """`@` followed by a zero-width joiner: no `@everyone` or `@name` even looks like a mention."""
    return text.replace("@", "@" + JOINER)


def plain_text(spans: Sequence[Span]) -> str:
    """What the spans read as, for the places Discord shows without markdown."""
    return plain(list(spans))


def write(spans: Sequence[Span], limit: int) -> str:
    """The spans as Discord markdown, at most `limit` long; cut with "…" when longer."""
    whole = "".join(_span(span) for span in spans)
    if size(whole) <= limit:
        return whole
    if limit < 1:
        return ""
    return _prefix(spans, limit - 1) + ELLIPSIS


def _prefix(spans: Sequence[Span], room: int) -> str:
    """As much of the spans as fits in `room`, whole spans first, then part of the next."""
    out: list[str] = []
    left = room
    for span in spans:
        whole = _span(span)
        if size(whole) <= left:
            out.append(whole)
            left -= size(whole)
            continue
        out.append(_part(span, left))
        break
    return "".join(out).rstrip()


def _span(span: Span) -> str:
    """One span as Discord markdown, cleaned already: a text of control characters alone must
    come out empty here, where an empty field value still gets its placeholder, not only at
    the last pass (`clean`), after which Discord would refuse the empty value."""
    return _unsafe_out(_markdown(span))


def _unsafe_out(text: str) -> str:
    return _UNSAFE.sub(lambda found: "\ufffd" if found.group(0) >= "\ud800" else "", text)


def _markdown(span: Span) -> str:
    if isinstance(span, Text):
        return escape(span.text)
    if isinstance(span, Styled):
        inner = "".join(_span(child) for child in span.children)
        if not inner.strip():
            return inner
        marker = _MARKERS.get(span.style, "")
        return f"{marker}{inner}{marker}"
    if isinstance(span, Code):
        if span.block:
            return f"```\n{_fenced(span.text)}\n```"
        return f"`{_inline(span.text)}`" if span.text else ""
    if isinstance(span, Link):
        return _link(span)
    if isinstance(span, Date):
        return f"<t:{span.epoch}:f>"
    if isinstance(span, Emoji):
        return span.unicode
    if isinstance(span, Quote):
        return "> " + "".join(_span(child) for child in span.children)
    assert isinstance(span, Break)
    return "\n"


def _part(span: Span, room: int) -> str:
    """The beginning of one span within `room`, still well formed ("" when none fits)."""
    if isinstance(span, Text):
        return longest(span.text, room, escape)
    if isinstance(span, Link):
        return longest(span.label or span.url, room, escape)
    if isinstance(span, Styled):
        marker = _MARKERS.get(span.style, "")
        inner = _prefix(span.children, room - 2 * size(marker))
        return f"{marker}{inner}{marker}" if inner.strip() else ""
    if isinstance(span, Quote):
        inner = _prefix(span.children, room - 2)
        return "> " + inner if inner else ""
    if isinstance(span, Code) and span.block:
        inner = longest(span.text, room - 8, _fenced)
        return f"```\n{inner}\n```" if inner else ""
    if isinstance(span, Code):
        inner = longest(span.text, room - 2, _inline)
        return f"`{inner}`" if inner else ""
    return ""  # a date, an emoji or a break is whole or nothing


def longest(text: str, room: int, shown: Callable[[str], str] = str) -> str:
    """`shown` of the longest beginning of `text` that fits in `room`."""
    if room < 1:
        return ""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if size(shown(text[:middle])) <= room:
            low = middle
        else:
            high = middle - 1
    return shown(text[:low])


def _inline(code: str) -> str:
    return code.replace("`", "\u02cb")  # a grave accent that is not a backtick


def _fenced(code: str) -> str:
    # no two backticks in a row: the block's fence cannot be closed early
    return re.sub(r"`(?=`)", "`" + ZERO_WIDTH, code)


def _link(span: Link) -> str:
    # a label that is itself a URL would read as a promise of where the link goes (Discord
    # refuses to mask one URL with another): show the link's own URL instead
    if not span.label.strip() or "://" in span.label:
        return f"<{span.url}>"
    url = span.url.replace("(", "%28").replace(")", "%29")
    return f"[{escape(span.label)}]({url})"


def clean(value: JsonValue) -> JsonValue:
    """Every string of a payload without lone surrogates and control characters."""
    if isinstance(value, str):
        return _unsafe_out(value)
    if isinstance(value, list):
        return [clean(item) for item in value]
    if isinstance(value, dict):
        return {key: clean(item) for key, item in value.items()}
    return value
