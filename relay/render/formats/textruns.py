"""relay's markup as the `TextRun`s of an Adaptive Card's `RichTextBlock`: how Teams' format
writes every text that may hold event data. Pure.

Adaptive Cards show a TextRun as written: they read no Markdown in a RichTextBlock (Microsoft's
"Text features" page: RichTextBlock does not support Markdown, while TextBlock, Fact.Title and
Fact.Value do), so no event text written here can form a link, a style or a list. `Writer`
turns relay's markup spans into runs, each style a property: bold -> `weight: bolder`, italic,
strike -> `strikethrough`, code -> `fontType: monospace`, relay's own link (a `Link` span, a URL
relay checked) -> a run with an `Action.OpenUrl` select action, a date -> its UTC text, an
emoji -> Unicode, a quoted line -> a subtle bar before it; adjacent runs of one style are one
run. A writer has a budget of characters shown: a cut ends with "…".

`neutral` is applied to every run: an `<at>` (Teams' mention tag, whatever its case or spacing)
gets an invisible word joiner after its `<`, so it reads as written and never pairs with a
mention entity, and a lone surrogate (which no UTF-8 encoder takes) becomes U+FFFD.
"""

from __future__ import annotations

import re

from relay.event import JsonValue
from relay.messages import JsonObject
from relay.render.markup import Break, Code, Date, Emoji, Link, Quote, Span, Styled, Text, decode
from relay.render.mrkdwn import ELLIPSIS, safe_url

# an `<at` (or `</at`) that Teams could read as a mention tag, whatever its case or spacing
_AT_TAG = re.compile(r"<(?=\s*/?\s*at(?![a-z0-9_-]))", re.IGNORECASE)
_WORD_JOINER = "\u2060"
_SURROGATE = re.compile("[\ud800-\udfff]")


def neutral(text: str) -> str:
    """Text as written, with a word joiner after the `<` of anything Teams could take for an
    `<at>` mention tag, and U+FFFD for a lone surrogate."""
    return _AT_TAG.sub("<" + _WORD_JOINER, _SURROGATE.sub("\ufffd", text))


def open_url(value: str) -> str | None:
    """An http(s) URL an `Action.OpenUrl` may open (checked as relay checks links), else None."""
    url = safe_url(value)
    return None if url is None or _SURROGATE.search(url) else url


class Writer:
    """Writes spans as TextRuns: each style a property, within a budget of characters shown
    (a cut ends with "…", and nothing is written after it)."""

    def __init__(self, budget: int, **base: JsonValue) -> None:
        self.left = budget
        self.base = base
        self.runs: list[JsonObject] = []
        self.cut = False
        self._line_start = True
        self._break_due = False

    def budget(self, left: int) -> None:
        """A new budget for what follows (a field's value after its label)."""
        self.left = left
        self.cut = False

    def add(self, text: str, **style: JsonValue) -> None:
        if self.cut or not text:
            return
        if self._break_due and text != "\n":
            self._break_due = False
            self.add("\n")
        if len(text) > self.left:
            text = text[: max(0, self.left - len(ELLIPSIS))].rstrip() + ELLIPSIS
            self.cut = True
        self.left -= len(text)
        run: JsonObject = {"type": "TextRun", "text": neutral(text), **self.base, **style}
        last = self.runs[-1] if self.runs else None
        if last is not None and {**last, "text": ""} == {**run, "text": ""}:  # one style: one run
            last["text"] = str(last["text"]) + str(run["text"])
        else:
            self.runs.append(run)
        self._line_start = text.endswith("\n")

    def spans(self, spans: list[Span], **style: JsonValue) -> None:
        for span in spans:
            self.span(span, style)

    def span(self, span: Span, style: dict[str, JsonValue]) -> None:
        if isinstance(span, Text):
            self.add(span.text, **style)
        elif isinstance(span, Styled):
            self.spans(list(span.children), **{**style, **_STYLE[span.style]})
        elif isinstance(span, Code):
            if span.block and not self._line_start and self.runs:
                self.add("\n")
            self.add(span.text, **{**style, "fontType": "monospace"})
            self._break_due = span.block
        elif isinstance(span, Link):
            url = open_url(decode(span.url))
            label = span.label or decode(span.url)
            if url is None:  # relay checked it when rendering: never expected, shown as text
                self.add(label, **style)
            else:
                action: JsonObject = {"type": "Action.OpenUrl", "url": url}
                self.add(label, **{**style, "selectAction": action})
        elif isinstance(span, Date):
            self.add(span.utc(), **style)
        elif isinstance(span, Emoji):
            self.add(span.unicode, **style)
        elif isinstance(span, Quote):
            self.add("\u2502 ", **{**style, "isSubtle": True})
            self.spans(list(span.children), **style)
        elif isinstance(span, Break):
            self._break_due = False
            self.add("\n")


_STYLE: dict[str, dict[str, JsonValue]] = {
    "bold": {"weight": "bolder"},
    "italic": {"italic": True},
    "strike": {"strikethrough": True},
}
