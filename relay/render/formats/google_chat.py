"""Google Chat: a card as `cardsV2` with a `text` line, and the route's mentions in Google
Chat's own form, within Google Chat's limits. Pure.

A card becomes one card (`cardsV2: [{cardId, card: {header, sections: [{widgets}]}}]`): its
status emoji and title as the header (the key fact as the subtitle), its summary and errors as
paragraphs, its fields two by two in `columns` of `decoratedText`, its other sections and its
details (one section each, under their label), its buttons in a `buttonList`, then a divider and
its context line and repeat counter. The message's `text`, shown above the card and in
notifications, is the mentions, the status emoji, the title and the key fact. A message that is
Slack Block Kit (a user's template) cannot be shown: its notification text goes as `text` alone.

Two markups, each with its own escaping (Google Chat API reference, "Format messages"):
- `text` takes Google Chat's text markup: `*bold*`, `_italic_`, `~strike~`, `` `code` ``,
  links `<url|label>`, mentions `<users/{id}>` and `<users/all>`. It has no escape character,
  and HTML entities are shown as typed (LibreNMS #18234: `&gt;` reached readers as `&gt;`), so
  untrusted text is neutralized instead: `<` and `>` become look-alikes (U+2039, U+203A: no link
  nor mention can start), an `&` that begins an entity becomes U+FF06, `*`, `~` and backticks
  become look-alikes, `_` too where it could open or close italics (never inside a word, so
  ids such as `tsk_4f8w` read as they are), and `](` is spaced, in code too (no Markdown link,
  should a space parse Markdown).
- card texts (`textParagraph`, `decoratedText.text`) take an HTML subset: bold `<b>`, italic
  `<i>`, strikethrough `<s>`, `<font color>`, links `<a href>`, `<br>`. Every text span is
  HTML-escaped (`&`, `<`, `>`); relay's code is shown in a colour (no monospace tag is
  documented), dates as UTC text, links only for http(s) URLs relay checked.
- plain fields (header title and subtitle, labels, button texts, section headers) get the
  look-alikes for `<` `>`: whether Google reads them as HTML or as plain text, no tag forms and
  nothing reads as an entity left undone.

Mentions come only from the route (the config's names): `@here`, `@channel`, `@everyone` and
`google_chat:all` -> `<users/all>`, `google_chat:users/ID` -> `<users/ID>`, in `text` (a card
cannot mention).

Limits (confirmed in the Google Chat API reference: `spaces.messages.create`, `CardWithId`,
`Card`): a message, text and cards together, at most 32,000 bytes; a card at most 32 KB and 100
widgets (widgets beyond are dropped silently). relay keeps the
whole payload under `MAX_BYTES` as compact UTF-8 JSON (which counts more than Google does) by
shortening the longest texts with `…`, and past `MAX_WIDGETS` widgets says how many were left
out.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from typing import NotRequired, TypedDict

from relay.event import JsonValue
from relay.messages import Card, JsonObject, Message
from relay.render.markup import (
    Code,
    Date,
    Emoji,
    Link,
    Quote,
    Span,
    Styled,
    Text,
    parse,
    plain,
    status_unicode,
)
from relay.render.mrkdwn import ELLIPSIS, safe_url


class GoogleChatPayload(TypedDict):
    """The body of `POST /v1/spaces/{space}/messages`, besides the thread (the sender's)."""

    text: str
    cardsV2: NotRequired[list[JsonObject]]


CARD_ID = "relay"
MAX_BYTES = 30_000  # Google's 32,000 for the whole message, with room to spare
MAX_WIDGETS = 100
BROADCASTS = frozenset({"@here", "@channel", "@everyone"})
CODE_COLOR = "#188038"
QUOTE_COLOR = "#80868b"
# the longest a text may be before Google's limits even come into it (characters of markup)
_TITLE, _FACT, _TEXT, _LABEL, _VALUE, _CODE, _BUTTON = 200, 500, 4000, 200, 2000, 4000, 80
# when the whole does not fit: every text is cut to at most this many characters, in turn
_SQUEEZE = (None, 2000, 1000, 500, 250, 120, 60, 30)


def takes_mention(name: str) -> bool:
    """Whether Google Chat has a form for a config mention name (a broadcast, or a name
    meant for Google Chat: `google_chat:users/ID`, `google_chat:all`)."""
    return name in BROADCASTS or name.startswith("google_chat:")


def mention_text(names: Sequence[str]) -> str | None:
    """Config mention names as Google Chat writes them (`<users/all>`, `<users/123>`), each
    once; names meant for another chat are left out."""
    out: dict[str, None] = {}
    for name in names:
        if name in BROADCASTS or name == "google_chat:all":
            out["<users/all>"] = None
        elif name.startswith("google_chat:users/"):
            user = name.removeprefix("google_chat:users/")
            if user.isdigit():  # the config allows only digits: checked again, it is a ping
                out[f"<users/{user}>"] = None
    return " ".join(out) or None


def payload(message: Message) -> GoogleChatPayload:
    """The `{text, cardsV2}` Google Chat takes for a message, with its mentions."""
    mention = mention_text(message.mentions)
    if isinstance(message, Card):
        return card_payload(message, mention)
    text = clean(message.text)
    if message.legacy_mention and text.startswith(message.legacy_mention):
        text = text[len(message.legacy_mention) :].lstrip()  # Slack's own form of a mention
    line = chat_text(parse(cut(text, _TEXT))) or ELLIPSIS
    return GoogleChatPayload(text=f"{mention} {line}" if mention else line)


def card_payload(card: Card, mention: str | None = None) -> GoogleChatPayload:
    """A card as Google Chat's `text` and one card, within Google Chat's limits."""
    text = _notification(card, mention)
    for squeeze in _SQUEEZE:
        header, sections = _card(card, squeeze)
        if not sections:
            return GoogleChatPayload(text=text)  # a title alone: the text says it all
        shown: JsonObject = {"header": header, "sections": sections}
        document = GoogleChatPayload(text=text, cardsV2=[{"cardId": CARD_ID, "card": shown}])
        if size(document) <= MAX_BYTES:
            return document
    # every text at 30 characters and still too big (not within 100 widgets): the text alone
    return GoogleChatPayload(text=text)


def size(document: GoogleChatPayload | JsonObject) -> int:
    """Bytes of the compact UTF-8 JSON (as sent)."""
    return len(json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode())


# ---------------------------------------------------------------- the card


def _notification(card: Card, mention: str | None) -> str:
    parts = [status_unicode(card.status), chat_text([Text(cut(clean(card.title), _TITLE))])]
    if card.fact:
        parts += ["—", chat_text(parse(cut(clean(card.fact), _FACT)))]
    if mention:
        parts.insert(0, mention)
    text = " ".join(p for p in parts if p)
    if card.repeat is not None:
        text += f" (seen {card.repeat.count} times)"
    return text


def _card(card: Card, squeeze: int | None) -> tuple[JsonObject, list[JsonValue]]:
    """The card's header and sections, every text at most `squeeze` characters."""

    def limit(text: str, own: int) -> str:
        return cut(clean(text), own if squeeze is None else min(own, squeeze))

    header: JsonObject = {
        "title": safe_plain(f"{status_unicode(card.status)} {limit(card.title, _TITLE)}")
    }
    if card.fact:
        header["subtitle"] = safe_plain(plain(parse(limit(card.fact, _FACT))))

    def paragraph(text: str) -> JsonObject:
        return _paragraph(html_text(parse(limit(text, _TEXT))))

    body: list[tuple[str | None, list[JsonObject]]] = []
    top = [paragraph(t) for t in (card.summary, card.errors) if t]
    if top:
        body.append((None, top))
    fields: list[JsonObject] = [
        {
            "decoratedText": {
                "topLabel": safe_plain(plain(parse(limit(f.label, _LABEL)))),
                "text": html_text(parse(limit(f.value, _VALUE))) or ELLIPSIS,
                "wrapText": True,
            }
        }
        for f in card.fields
    ]
    if fields:
        rows: list[JsonObject] = []
        for start in range(0, len(fields), 2):
            pair = fields[start : start + 2]
            if len(pair) == 1:
                rows.append(pair[0])
            else:
                items: list[JsonValue] = [{"widgets": [w]} for w in pair]
                rows.append({"columns": {"columnItems": items}})
        body.append((None, rows))
    if card.sections:
        body.append((None, [paragraph(s) for s in card.sections]))
    for detail in card.details:
        code = html_code(limit(detail.code, _CODE))
        body.append((safe_plain(limit(detail.label, _LABEL)) or None, [_paragraph(code)]))

    tail: list[JsonObject] = []
    buttons: list[JsonValue] = []
    for button in card.buttons:
        url = safe_url(button.url)
        if url is None:
            continue
        shown: JsonObject = {
            "text": safe_plain(limit(button.text, _BUTTON)) or "Open",
            "onClick": {"openLink": {"url": url}},
        }
        if button.style in ("primary", "danger"):
            shown["type"] = "FILLED"
        if button.style == "danger":
            shown["color"] = {"red": 0.85, "green": 0.19, "blue": 0.15, "alpha": 1}
        buttons.append(shown)
    if buttons:
        tail.append({"buttonList": {"buttons": buttons}})
    footer = []
    if card.context:
        footer.append(paragraph(card.context))
    if card.repeat is not None:
        r = card.repeat
        first, last = Date(int(r.first_at), "").utc(), Date(int(r.last_at), "").utc()
        line = f"\U0001f501 Seen {r.count} times · first {first} · last {last}"
        footer.append(_paragraph(html_text([Text(line)])))
    if footer:
        tail += [{"divider": {}}, *footer] if tail else footer

    sections: list[JsonValue] = [
        {**({"header": head} if head else {}), "widgets": list(widgets)}
        for head, widgets in _within_widget_limit(body, tail)
    ]
    return header, sections


def _paragraph(text: str) -> JsonObject:
    return {"textParagraph": {"text": text or ELLIPSIS}}


def widget_count(widget: JsonValue) -> int:
    """The widgets one widget stands for: `columns` counts itself and the widgets it holds."""
    if not isinstance(widget, dict):
        return 0
    columns = widget.get("columns")
    if not isinstance(columns, dict):
        return 1
    items = columns.get("columnItems")
    inner = 0
    for item in items if isinstance(items, list) else []:
        held = item.get("widgets") if isinstance(item, dict) else None
        inner += sum(widget_count(w) for w in held) if isinstance(held, list) else 0
    return 1 + inner


Sections = list[tuple[str | None, list[JsonObject]]]


def _within_widget_limit(body: Sections, tail: list[JsonObject]) -> Sections:
    """The body's sections, cut where the widgets would pass the limit with a line saying how
    many were left out, then the tail (buttons and footer) whole."""
    room = MAX_WIDGETS - sum(widget_count(w) for w in tail)
    total = sum(widget_count(w) for _head, widgets in body for w in widgets)
    kept: Sections = []
    if total <= room:
        kept = list(body)
    else:
        room -= 1  # for the line that says so
        left = 0
        for head, widgets in body:
            shown = []
            for widget in widgets:
                count = widget_count(widget)
                if count <= room:
                    shown.append(widget)
                    room -= count
                else:
                    room = 0
                    left += count - 1 if "columns" in widget else 1  # the fields it holds
            if shown:
                kept.append((head, shown))
        note = f"{ELLIPSIS} {left} more not shown (Google Chat shows at most 100 widgets)"
        kept.append((None, [_paragraph(html_text([Text(note)]))]))
    if tail:
        kept.append((None, tail))
    return kept


# ---------------------------------------------------------------- text, plain, HTML


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")
_MARKER = re.compile(r"[*~`]|(?<![^\W_])_|_(?![^\W_])")
_LOOKALIKE = {"*": "\u2217", "~": "\u223c", "`": "\u02cb", "_": "\uff3f"}
_SAFE_ANGLES = str.maketrans({"<": "\u2039", ">": "\u203a"})


def clean(text: str) -> str:
    """Without control characters (a newline and a tab stay) and with any lone surrogate
    replaced: Google cannot show them, and a lone surrogate is not even valid UTF-8."""
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))


def cut(text: str, limit: int) -> str:
    """At most `limit` characters of markup; a cut is marked with `…` (what it cuts in two,
    a link or a style, then reads as text)."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + ELLIPSIS


def safe_plain(text: str) -> str:
    """Plain text for a field that may or may not be read as HTML: no tag can form."""
    return clean(text).translate(_SAFE_ANGLES).strip()


def chat_escape(text: str) -> str:
    """Untrusted text neutralized for Google Chat's text markup (see the module docstring)."""
    text = clean(text).translate(_SAFE_ANGLES)
    text = _ENTITY.sub("\uff06", text).replace("](", "] (")
    return _MARKER.sub(lambda found: _LOOKALIKE[found.group()], text)


def chat_text(spans: Sequence[Span]) -> str:
    """Spans in Google Chat's text markup, every text neutralized."""
    return "".join(_chat(span) for span in spans).strip()


def _chat(span: Span) -> str:
    if isinstance(span, Text):
        return chat_escape(span.text)
    if isinstance(span, Styled):
        marker = {"bold": "*", "italic": "_", "strike": "~"}.get(span.style, "")
        inner = "".join(_chat(child) for child in span.children)
        return f"{marker}{inner}{marker}" if inner.strip() else inner
    if isinstance(span, Code):
        # `](` spaced here too: whether Google reads a Markdown link inside code is not
        # documented, and event text reaches code spans (a value shown as code)
        code = clean(span.text).translate(_SAFE_ANGLES).replace("`", _LOOKALIKE["`"])
        code = code.replace("](", "] (")
        if span.block:
            return f"```\n{code}\n```"
        return f"`{code}`" if code.strip() else code
    if isinstance(span, Link):
        url = safe_url(span.url)
        label = chat_escape(span.label).replace("|", "\u00a6")
        if url is None:
            return label or chat_escape(span.url)
        return f"<{url}|{label}>" if label else f"<{url}>"
    if isinstance(span, Date):
        return chat_escape(span.utc())
    if isinstance(span, Emoji):
        return span.unicode
    if isinstance(span, Quote):
        return "> " + "".join(_chat(child) for child in span.children)
    return "\n"


def _escape(text: str) -> str:
    return html.escape(clean(text), quote=False)


def html_text(spans: Sequence[Span]) -> str:
    """Spans in the HTML subset of card texts, every text escaped."""
    return "".join(_html(span) for span in spans).strip()


def html_code(code: str) -> str:
    """A block of code or JSON, verbatim: line breaks kept, leading spaces kept."""
    lines = []
    for line in clean(code).strip("\n").split("\n"):
        stripped = line.lstrip(" ")
        lines.append("\u00a0" * (len(line) - len(stripped)) + _escape(stripped))
    return f'<font color="{CODE_COLOR}">' + "<br>".join(lines) + "</font>"


_TAGS = {"bold": "b", "italic": "i", "strike": "s"}


def _html(span: Span) -> str:
    if isinstance(span, Text):
        return _escape(span.text).replace("\n", "<br>")
    if isinstance(span, Styled):
        inner = "".join(_html(child) for child in span.children)
        tag = _TAGS.get(span.style)
        return f"<{tag}>{inner}</{tag}>" if tag is not None and inner else inner
    if isinstance(span, Code):
        if span.block:
            return html_code(span.text)
        return f'<font color="{CODE_COLOR}">{_escape(span.text)}</font>' if span.text else ""
    if isinstance(span, Link):
        url = safe_url(span.url)
        label = _escape(span.label or span.url)
        if url is None:
            return label
        return f'<a href="{html.escape(url, quote=True)}">{label}</a>'
    if isinstance(span, Date):
        return _escape(span.utc())
    if isinstance(span, Emoji):
        return span.unicode
    if isinstance(span, Quote):
        inner = "".join(_html(child) for child in span.children)
        return f'<font color="{QUOTE_COLOR}">\u258e</font> {inner}'
    return "<br>"
