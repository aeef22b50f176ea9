"""Mattermost's Markdown and plain text, written from relay's spans within a character budget,
with every Text span escaped so that event text can never mention anyone, form a link or a
Slack-style sequence. Pure.

What Mattermost does with a post's text, and so what the escaping must defeat (read in the
server's source, mattermost/mattermost `server/channels/app`, and its web app's
`message_attachment.tsx`):
- Mentions: the server parses the message, and an attachment's pretext, text and field values,
  as Markdown and looks for mentions in the Text nodes only (`getExplicitMentions` with
  `markdown.Inspect`): code is left out, but backslash escapes and entities are resolved first,
  so `\\@here` or `&#64;here` would still mention. A word is split at any character that is not
  a letter, a digit or one of `:.-_@` (`mention_parser_standard.go`), so relay writes a zero-width
  joiner (U+200D) after every `@`: `@\u200dhere` reads as `@here` and is the words `@` and
  `here`. There is no allow-list to rely on instead; relay writes mentions only from the
  config's names (`relay.render.formats.mattermost`).
- Slack compatibility: an incoming webhook's text, pretext, title and field values first go
  through `ProcessSlackText` (`<!channel>`, `<!here>`, `<!all>` become channel-wide mentions,
  `<@id>` a user mention) and `<url|label>` becomes a Markdown link, before any Markdown. A
  backslash does not stop that (`\\<!here>` becomes `\\@here`, a mention), so relay writes `<`
  as the entity `&lt;`: no `<` is left to match. Inside code, where entities are not read,
  `<!` and `<@` get a zero-width joiner after the `<` instead.
- Links: `[label](url)` (and `![...]`) need `[`, `]`, `(`, `)`, escaped with a backslash;
  bare URLs are linked by the clients (GFM autolinks: `http://`, `www.`, and any scheme such as
  `mailto:`): a `:` right after a letter and before a non-space is escaped, as is the `.` of
  `www.`, and an e-mail address is broken by the joiner after its `@`. Only relay's Link spans
  (http(s) URLs relay checked) become links.
- Formatting: `\\ ` * _ ~ |` (but `_` within a word, which cannot emphasize), and `# > - + =`
  and an ordered-list number at the start of a line, are escaped, so event text shows as it
  reads. Push notifications show a post's text as it is written, escapes included, so relay
  escapes no more than that.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from relay.render.markup import Break, Code, Date, Emoji, Link, Quote, Span, Styled, Text

ZWJ = "\u200d"
ELLIPSIS = "…"
MARKS = {"bold": "**", "italic": "_", "strike": "~~"}

_ALWAYS = frozenset("\\`*_~[]()|")
_LINE_START = frozenset("#>-+=")
_ENTITY = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_URL_ESCAPES = {
    "(": "%28",
    ")": "%29",
    "<": "%3C",
    ">": "%3E",
    "\\": "%5C",
    "[": "%5B",
    "]": "%5D",
    "`": "%60",
}
# text without any character `escape_atoms` could change, wherever it stands: spaces and digits
# alone change nothing (a digit matters only before a `.`, a space only before what the start of
# a line escapes), so such text is its own escape
_PLAIN = re.compile(r"[^\\`*_~\[\]()|<@&:.\r\n#>\-+=\x00-\x1f\x7f\ud800-\udfff]*")
_CODE_SEQUENCE = re.compile(r"<(?=[!@#])")
# what a post should not hold: a lone surrogate is not UTF-8 (the request could not even be
# encoded), PostgreSQL behind the server refuses NUL, other control characters show as nothing
# or break lines Markdown would read: each shows as U+FFFD
_UNSOUND = re.compile("[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def sound(text: str) -> str:
    return _UNSOUND.sub("\ufffd", text)


def escape_atoms(text: str, line_start: bool = False) -> Iterator[str]:
    """Each character of untrusted text as Mattermost's Markdown shows it literally (one
    string per character, so that a cut never splits an escape)."""
    lead = line_start  # still before the first character of a line that is not a space
    number = False  # the line so far is digits: `1.` would start an ordered list
    text = sound(text)
    for i, char in enumerate(text):
        before = text[i - 1] if i else ""
        after = text[i + 1] if i + 1 < len(text) else ""
        if char in "\r\n":  # both end a line in Markdown
            yield "\n"
            lead, number = True, False
            continue
        if lead and char == " ":
            yield char
            continue
        if char == "_" and before.isalnum() and after.isalnum():
            out = char  # within a word `_` can neither open nor close emphasis
        elif char in _ALWAYS:
            out = "\\" + char
        elif char == "<":
            out = "&lt;"
        elif char == "@":
            out = "@" + ZWJ
        elif char == "&" and _ENTITY.match(text, i):
            out = "\\&"
        elif char == ":" and before.isalpha() and after and not after.isspace():
            out = "\\:"  # `https://`, `mailto:`: no autolink
        elif (
            char == "."
            and text[max(0, i - 3) : i].lower() == "www"
            and (i < 4 or not text[i - 4].isalnum())
        ):
            out = "\\."
        elif lead and char in _LINE_START:
            out = "\\" + char
        elif number and char == "." and after in ("", " ", "\t"):
            out = "\\."  # `1. ` would start an ordered list
        else:
            out = char
        number = (lead or number) and char.isdigit()
        lead = False
        yield out


def escape(text: str, line_start: bool = False) -> str:
    if _PLAIN.fullmatch(text) is not None:
        return text  # nothing to escape (the usual case): known without the walk
    return "".join(escape_atoms(text, line_start))


def code_text(text: str) -> str:
    """Code shown verbatim; only a Slack-style `<!`/`<@`/`<#` gets a joiner, which webhooks
    would otherwise turn into a mention (inside code it would not notify, but it would read
    differently from what the event said)."""
    return _CODE_SEQUENCE.sub("<" + ZWJ, sound(text))


def url_text(url: str) -> str:
    """A link's destination with the characters Markdown would end it on percent-encoded."""
    return "".join(_URL_ESCAPES.get(c, "%20" if c.isspace() else c) for c in sound(url))


def plain_text(text: str, limit: int) -> str:
    """Text for the places Mattermost shows as it is (an attachment's footer, fallback and field
    titles): no Markdown, but no mention, Slack sequence or e-mail link either; cut with `…`."""
    safe = " ".join(sound(text).replace("@", "@" + ZWJ).replace("<", "<" + ZWJ).splitlines())
    if len(safe) <= limit:
        return safe
    cut = safe[: limit - 1]
    if cut.endswith(("@", "<")):  # never leave a bare `@` or `<` whose joiner was cut off
        cut = cut[:-1]
    return cut + ELLIPSIS


class Writer:
    """Mattermost Markdown out of spans, at most `limit` characters: when the budget runs out
    the text ends with `…` and every style or code span still open is closed."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.used = 0
        self.closers: list[str] = []  # reserved: what must still be written to close
        self.cut = False
        self.line_start = True

    @property
    def result(self) -> str:
        return "".join(self.parts)

    def _room(self, size: int) -> bool:
        reserved = sum(len(c) for c in self.closers) + len(ELLIPSIS)
        return self.used + size + reserved <= self.limit

    def _emit(self, piece: str) -> None:
        self.parts.append(piece)
        self.used += len(piece)
        self.line_start = piece.endswith("\n") or (self.line_start and piece == " ")

    def put(self, piece: str) -> bool:
        """Write `piece` whole, or stop here (with `…`) when it does not fit."""
        if self.cut:
            return False
        if not self._room(len(piece)):
            self._stop()
            return False
        self._emit(piece)
        return True

    def _stop(self) -> None:
        self.cut = True
        self._emit(ELLIPSIS)  # room for it is always kept

    def _whole(self, atoms: str) -> bool:
        """Write a run of atoms (characters and escapes) in one piece if all of them fit, as
        writing them one at a time would (the usual case: piece by piece took most of a
        payload's time, bench/render.py); False, writing nothing, if they do not."""
        if self.cut or not self._room(len(atoms)):
            return False
        self.parts.append(atoms)
        self.used += len(atoms)
        ended = atoms.rstrip(" ")  # `_emit`'s line start after the last atom that is no space
        if ended:
            self.line_start = ended.endswith("\n")
        return True

    def text(self, text: str) -> None:
        if self.cut or self._whole(escape(text, self.line_start)):
            return
        for atom in escape_atoms(text, self.line_start):
            if not self.put(atom):
                return

    def _open(self, opener: str, closer: str) -> bool:
        if self.cut:
            return False
        if not self._room(len(opener) + len(closer) + 1):
            self._stop()
            return False
        self._emit(opener)
        self.closers.append(closer)
        return True

    def _close(self) -> None:
        self._emit(self.closers.pop())

    def spans(self, spans: Sequence[Span]) -> None:
        for i, span in enumerate(spans):
            if self.cut:
                return
            if isinstance(span, Text):
                self.text(span.text)
            elif isinstance(span, Styled):
                if span.children and self._open(MARKS[span.style], MARKS[span.style]):
                    self.spans(span.children)
                    self._close()
            elif isinstance(span, Code):
                self._code(span)
            elif isinstance(span, Link):
                self._link(span)
            elif isinstance(span, Date):
                self.text(span.utc())
            elif isinstance(span, Emoji):
                self.put(span.unicode)
            elif isinstance(span, Quote):
                if not self.line_start:
                    self.put("\n")
                if self.put("> "):
                    self.line_start = True  # `> # x` would be a heading in the quote
                    self.spans(span.children)
            elif isinstance(span, Break):
                self.put("\n")
                quoted = i > 0 and isinstance(spans[i - 1], Quote)
                if quoted and not (i + 1 < len(spans) and isinstance(spans[i + 1], Quote)):
                    self.put("\n")  # else the next line would continue the quote

    def _code(self, span: Code) -> None:
        longest = max((len(run) for run in re.findall(r"`+", span.text)), default=0)
        if span.block:
            fence = "`" * max(3, longest + 1)
            if not self.line_start:
                self.put("\n")
            opener, closer = fence + "\n", "\n" + fence + "\n"
        else:
            fence = "`" * (longest + 1)
            pad = " " if span.text.startswith("`") or span.text.endswith("`") else ""
            opener, closer = fence + pad, pad + fence
        if not span.text or not self._open(opener, closer):
            return
        code = code_text(span.text)
        if not self._whole(code):
            for char in code:
                if not self.put(char):
                    break
        self._close()

    def _link(self, span: Link) -> None:
        label = escape(span.label or span.url)
        whole = f"[{label}]({url_text(span.url)})"
        if self._room(len(whole)):
            self.put(whole)
        else:
            self.text(span.label or span.url)  # as much of the label as fits, as text


def markdown(spans: Sequence[Span], limit: int) -> tuple[str, bool]:
    """The spans as Mattermost Markdown within `limit` characters, and whether it was cut."""
    writer = Writer(limit)
    writer.spans(spans)
    return writer.result, writer.cut
