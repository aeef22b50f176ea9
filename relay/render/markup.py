"""relay's inline markup: how the text of a card is written, and how a chat reads it back.

A card's texts are written in Slack's mrkdwn, the way relay's templates and filters write it:
`*bold*`, `_italic_`, `~strike~`, `` `code` ``, fenced code blocks, `>` quoted lines, links
`<https://...|label>` and dates `<!date^epoch^format|fallback>` made by relay's filters (any
other `<...>` was neutralized when the card was rendered), `:emoji:` shortcodes, and the
entities `&amp;`, `&lt;`, `&gt;` (every value from an event went through `mrkdwn.escape`, so
it can hold no `<...>` sequence of its own). Slack takes it as it is; `parse` turns it into
spans that every other chat's formatter writes in its own markup, escaping all the rest.

Also the status of a card (`success`, `failure`, ...) and the emoji that shows it, as a Slack
shortcode and as the Unicode character chats without shortcodes need. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

STATUS_EMOJI = {
    "success": "white_check_mark",
    "failure": "x",
    "warning": "warning",
    "waiting": "raising_hand",
    "attention": "rotating_light",
    "info": "information_source",
    "started": "arrow_forward",
    "running": "arrows_counterclockwise",
    "queued": "hourglass_flowing_sand",
    "stopping": "double_vertical_bar",
    "cancelled": "no_entry_sign",
    "created": "sparkles",
    "updated": "pencil2",
    "deleted": "wastebasket",
    "healed": "adhesive_bandage",
    "recording": "movie_camera",
    "idle": "zzz",
    "key": "key",
    "file": "page_facing_up",
    "digest": "package",
}

# every shortcode relay writes itself, as Unicode for chats that show shortcodes as text
EMOJI = {
    "white_check_mark": "\u2705",
    "x": "\u274c",
    "warning": "\u26a0\ufe0f",
    "raising_hand": "\U0001f64b",
    "rotating_light": "\U0001f6a8",
    "information_source": "\u2139\ufe0f",
    "arrow_forward": "\u25b6\ufe0f",
    "arrows_counterclockwise": "\U0001f504",
    "hourglass_flowing_sand": "\u23f3",
    "double_vertical_bar": "\u23f8\ufe0f",
    "no_entry_sign": "\U0001f6ab",
    "sparkles": "\u2728",
    "pencil2": "\u270f\ufe0f",
    "wastebasket": "\U0001f5d1\ufe0f",
    "adhesive_bandage": "\U0001fa79",
    "movie_camera": "\U0001f3a5",
    "zzz": "\U0001f4a4",
    "key": "\U0001f511",
    "page_facing_up": "\U0001f4c4",
    "package": "\U0001f4e6",
    "repeat": "\U0001f501",
}


def status_shortcode(status: str) -> str:
    """`failure` -> `:x:`; an unknown status shows as information."""
    return f":{STATUS_EMOJI.get(status, 'information_source')}:"


def status_unicode(status: str) -> str:
    """`failure` -> `❌`."""
    return EMOJI[STATUS_EMOJI.get(status, "information_source")]


# ---------------------------------------------------------------- spans


@dataclass(frozen=True, slots=True)
class Text:
    text: str  # entities decoded: exactly what a reader should see


@dataclass(frozen=True, slots=True)
class Styled:
    """`bold`, `italic` or `strike` around inner spans."""

    style: str
    children: tuple[Span, ...]


@dataclass(frozen=True, slots=True)
class Code:
    text: str
    block: bool = False  # a fenced block rather than inline code


@dataclass(frozen=True, slots=True)
class Link:
    url: str  # an http(s) URL, checked when the card was rendered
    label: str  # plain text ("" when the link shows its URL)


@dataclass(frozen=True, slots=True)
class Date:
    epoch: int
    fallback: str  # as Slack would show it to a reader without a time zone: UTC

    def utc(self) -> str:
        return datetime.fromtimestamp(self.epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True, slots=True)
class Emoji:
    name: str

    @property
    def unicode(self) -> str:
        return EMOJI[self.name]


@dataclass(frozen=True, slots=True)
class Quote:
    """One quoted line."""

    children: tuple[Span, ...]


@dataclass(frozen=True, slots=True)
class Break:
    """The end of a line."""


Span = Text | Styled | Code | Link | Date | Emoji | Quote | Break


def decode(text: str) -> str:
    """The three entities mrkdwn escapes, back to characters (`&amp;` last)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


_FENCE = re.compile(r"```(.*?)```", re.S)
_ANGLED = re.compile(r"<([^<>]*)>")
_DATE = re.compile(r"^!date\^(-?\d+)\^[^|]*(?:\|(.*))?$")
_EMOJI = re.compile(r":([a-z0-9_+-]+):")
_STYLES = {"*": "bold", "_": "italic", "~": "strike"}
_MARKER = re.compile(r"[*_~]")
# a text without any of these is one Text span as it reads
_SPECIAL = re.compile(r"[`<>\n*_~:&]")
# Slack's rule: a marker opens at the start or after a space or punctuation, and closes before
# the end, a space or punctuation; the text between neither starts nor ends with a space
_EDGE = " \t\n.,;:!?()[]{}\"'/-"


def parse(text: str) -> list[Span]:
    """The spans of a text in relay's markup, in reading order."""
    if _SPECIAL.search(text) is None:  # most texts of a card (a field's value, say)
        return [Text(text)] if text else []
    spans: list[Span] = []
    pos = 0
    for fence in _FENCE.finditer(text):
        spans += _lines(text[pos : fence.start()])
        spans.append(Code(decode(fence.group(1).strip("\n")), block=True))
        pos = fence.end()
    spans += _lines(text[pos:])
    return _merged(spans)


def _merged(spans: list[Span]) -> list[Span]:
    """Adjacent texts as one (so that a formatter escapes and measures them together)."""
    out: list[Span] = []
    for span in spans:
        if isinstance(span, Text) and out and isinstance(out[-1], Text):
            out[-1] = Text(out[-1].text + span.text)
        elif isinstance(span, Styled | Quote):
            merged = tuple(_merged(list(span.children)))
            out.append(Styled(span.style, merged) if isinstance(span, Styled) else Quote(merged))
        else:
            out.append(span)
    return out


def _lines(text: str) -> list[Span]:
    out: list[Span] = []
    for i, line in enumerate(text.split("\n")):
        if i:
            out.append(Break())
        if line.startswith(">"):
            out.append(Quote(tuple(_inline(line[1:]))))
        elif line:
            out += _inline(line)
    return out


def _inline(text: str) -> list[Span]:
    """Spans of one line: `<...>` sequences and code first, then styles, emoji and text."""
    out: list[Span] = []
    pos = 0
    for found in _ANGLED.finditer(text):
        out += _styled(text[pos : found.start()])
        out.append(_sequence(found.group(1)))
        pos = found.end()
    out += _styled(text[pos:])
    return out


def _sequence(inner: str) -> Span:
    date = _DATE.match(inner)
    if date is not None:
        epoch = int(date.group(1))
        return Date(epoch, decode(date.group(2) or ""))
    if inner.startswith(("http://", "https://")):
        url, _, label = inner.partition("|")
        return Link(url, decode(label))
    return Text(decode(f"<{inner}>"))  # not a sequence relay writes: shown as it reads


def _styled(text: str) -> list[Span]:
    """Inline code, then `*bold*`, `_italic_` and `~strike~` by Slack's rules, then emoji."""
    out: list[Span] = []
    parts = text.split("`")
    for i, part in enumerate(parts):
        code = i % 2 == 1 and i < len(parts) - 1  # between two backticks
        if code:
            out.append(Code(decode(part)))
        elif i % 2 == 1:  # an unpaired backtick: text
            out += _marked("`" + part)
        else:
            out += _marked(part)
    return out


def _marked(text: str) -> list[Span]:
    plain_from = 0
    out: list[Span] = []
    # from marker to marker: stepping through every character took most of a chat's payload
    # time (bench/render.py)
    found = _MARKER.search(text)
    while found is not None:
        i = found.start()
        if i == 0 or text[i - 1] in _EDGE:
            close = _closing(text, i)
            if close is not None:
                out += _emoji(text[plain_from:i])
                inner = text[i + 1 : close]
                out.append(Styled(_STYLES[text[i]], tuple(_marked(inner))))
                plain_from = close + 1
                found = _MARKER.search(text, plain_from)
                continue
        found = _MARKER.search(text, i + 1)
    out += _emoji(text[plain_from:])
    return out


def _closing(text: str, start: int) -> int | None:
    marker = text[start]
    if start + 1 >= len(text) or text[start + 1] in " \t":
        return None
    end = start + 1
    while True:
        end = text.find(marker, end + 1)
        if end < 0:
            return None
        after_ok = end + 1 == len(text) or text[end + 1] in _EDGE
        if text[end - 1] not in " \t" and after_ok:
            return end


def _emoji(text: str) -> list[Span]:
    if ":" not in text:
        return [Text(decode(text))] if text else []
    out: list[Span] = []
    pos = 0
    for found in _EMOJI.finditer(text):
        if found.group(1) not in EMOJI:
            continue
        if found.start() > pos:
            out.append(Text(decode(text[pos : found.start()])))
        out.append(Emoji(found.group(1)))
        pos = found.end()
    if pos < len(text):
        out.append(Text(decode(text[pos:])))
    return out


def plain(spans: list[Span]) -> str:
    """What the spans read as without any formatting (dates in UTC, emoji as Unicode)."""
    parts: list[str] = []
    for span in spans:
        if isinstance(span, Text):
            parts.append(span.text)
        elif isinstance(span, Styled | Quote):
            parts.append(plain(list(span.children)))
        elif isinstance(span, Code):
            parts.append(span.text)
        elif isinstance(span, Link):
            parts.append(span.label or span.url)
        elif isinstance(span, Date):
            parts.append(span.utc())
        elif isinstance(span, Emoji):
            parts.append(span.unicode)
        else:
            parts.append("\n")
    return "".join(parts)
