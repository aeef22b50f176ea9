"""Discord: a card as one embed with link buttons, and the route's mentions in Discord's form.

A card becomes one embed: its status emoji and title as the title, its status as the colour,
its summary, errors, other sections and details (as code blocks) as the description, its
fields as inline fields, its context line as the footer; a repeated message carries a
"Seen N times" field. Its buttons are link buttons (style 5) in action rows of five: a webhook
that no application owns may send non-interactive components when the URL says
`with_components=true` (Discord's Execute Webhook docs, `with_components`), which the sender
does; a URL longer than a link button takes (512) is written in the description instead. A
message that is Block Kit (a user's template) shows its notification text as the description.

Every text is relay's markup read back into spans (`relay.render.markup`) and written as
Discord markdown by `relay.render.formats.discord_markdown`, which escapes every text span: event
text can never format, mask a link, show a mention or a timestamp. Only relay's own links and
dates become links (`[label](url)`) and timestamps (`<t:EPOCH:f>`).

Mentions ping only from `content`, and only those `allowed_mentions` lists: every payload carries
`allowed_mentions` with `parse: []` (none from the text) plus the users and roles of the
route's `discord:user:ID` and `discord:role:ID` names; `@here` and `@everyone` are written as
they are and allowed with `parse: ["everyone"]`; Slack's `@channel` (every member of the
channel, online or not) is Discord's `@everyone`. `content` holds the mentions and nothing else.

Every limit Discord documents is kept (content 2000, title 256, description 4096, 25 fields of
256 and 1024, footer 2048, 6000 characters over the embed, 5 rows of 5 buttons, labels 80):
long texts are cut visibly with "…", long fields share what is left of the 6000. Lengths are
counted in UTF-16 units, which is never fewer than the characters Discord counts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from relay.event import JsonValue
from relay.messages import Blocks, Card, JsonObject, Message
from relay.render.formats.discord_markdown import (
    ELLIPSIS,
    ZERO_WIDTH,
    clean,
    longest,
    neutral,
    plain_text,
    size,
    write,
)
from relay.render.markup import (
    EMOJI,
    Break,
    Date,
    Link,
    Span,
    Styled,
    Text,
    parse,
    status_unicode,
)

CONTENT_MAX = 2000
TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
EMBED_TOTAL_MAX = 6000
THREAD_NAME_MAX = 100
BUTTONS_PER_ROW = 5
ROWS_MAX = 5
LABEL_MAX = 80
BUTTON_URL_MAX = 512
MENTIONS_MAX = 100  # users, and roles, an allowed_mentions object may list

BROADCASTS = {"@here": "@here", "@everyone": "@everyone", "@channel": "@everyone"}
_SEPARATORS = re.compile(r" ·(?:\s+·)+ ")
_SNOWFLAKE = re.compile(r"^discord:(user|role):([0-9]{5,25})$")

COLOURS = {
    "success": 0x2EB67D,
    "healed": 0x2EB67D,
    "failure": 0xE01E5A,
    "attention": 0xE8590C,
    "warning": 0xECB22E,
    "waiting": 0xECB22E,
    "cancelled": 0x99AAB5,
    "deleted": 0x99AAB5,
    "idle": 0x99AAB5,
}
INFO_COLOUR = 0x5865F2


def takes_mention(name: str) -> bool:
    """Whether Discord has a form for a config mention name: a broadcast, a Discord user or
    role."""
    return name in BROADCASTS or _SNOWFLAKE.match(name) is not None


@dataclass(frozen=True, slots=True)
class Mentions:
    """The `content` that mentions, and the `allowed_mentions` that lets exactly it ping."""

    text: str
    allowed: JsonObject


def mentions(names: Sequence[str]) -> Mentions:
    """Config mention names as Discord writes them, and the allow-list that pings them only."""
    tokens: list[str] = []
    users: list[JsonValue] = []
    roles: list[JsonValue] = []
    everyone = False
    for name in names:
        if name in BROADCASTS:
            everyone = True
            tokens.append(BROADCASTS[name])
        elif (found := _SNOWFLAKE.match(name)) is not None:
            kind, snowflake = found.groups()
            listed = users if kind == "user" else roles
            if len(listed) < MENTIONS_MAX and snowflake not in listed:
                listed.append(snowflake)
                tokens.append(f"<@{snowflake}>" if kind == "user" else f"<@&{snowflake}>")
    allowed: JsonObject = {"parse": ["everyone"] if everyone else []}
    if users:
        allowed["users"] = users
    if roles:
        allowed["roles"] = roles
    text = ""
    for token in dict.fromkeys(tokens):
        if size(text) + size(token) + 1 > CONTENT_MAX:
            break
        text = f"{text} {token}" if text else token
    return Mentions(text, allowed)


def payload(message: Message) -> JsonObject:
    """The JSON Discord's Execute Webhook (and Edit Webhook Message) takes for a message.

    Every key is always there, `components` and `content` too (empty when there are none): an
    edit replaces what it names and keeps what it leaves out."""
    if isinstance(message, Card):
        embed, components = card_embed(message)
    else:
        embed, components = _blocks_embed(message), []
    said = mentions(message.mentions)
    out: JsonObject = {
        "content": said.text,
        "embeds": [embed],
        "components": components,
        "allowed_mentions": said.allowed,
    }
    cleaned = clean(out)
    assert isinstance(cleaned, dict)
    return cleaned


def thread_name(message: Message) -> str:
    """The name of the forum post a message starts: its title (or notification text), plain."""
    text = message.title if isinstance(message, Card) else plain_text(parse(message.text))
    name = _plain(" ".join(text.split()), THREAD_NAME_MAX)
    return name or "relay"


# ---------------------------------------------------------------- the embed


def card_embed(card: Card) -> tuple[JsonObject, list[JsonValue]]:
    """A card as one embed, and its buttons as action rows."""
    emoji = status_unicode(card.status)
    title = f"{emoji} {write([Text(card.title)], TITLE_MAX - size(emoji) - 1)}".rstrip()
    buttons, long_links = _buttons(card)
    parts = [card.summary, card.errors, *card.sections]
    parts += [f"*{d.label}*\n```{d.code}```" for d in card.details]
    description = _joined([parse(p) for p in parts if p] + long_links)
    labelled = [(parse(f.label), parse(f.value)) for f in card.fields]
    room = FIELDS_MAX - (1 if card.repeat is not None else 0)
    if len(labelled) > room:
        more = len(labelled) - room + 1
        labelled = [*labelled[: room - 1], ([Text("…")], [Text(f"{more} more fields")])]
    footer, stamp = _footer(card.context)
    repeat: JsonObject | None = None
    if card.repeat is not None:
        r = card.repeat
        seen = f"{EMOJI['repeat']} Seen {r.count} times"
        when: list[Span] = [Text("first "), Date(int(r.first_at), ""), Text(" · last ")]
        when.append(Date(int(r.last_at), ""))
        repeat = {"name": seen, "value": write(when, FIELD_VALUE_MAX), "inline": False}
    fixed = size(title) + size(footer)
    if repeat is not None:
        fixed += size(str(repeat["name"])) + size(str(repeat["value"]))
    shares = _shares(description, labelled, EMBED_TOTAL_MAX - fixed)
    embed: JsonObject = {"title": title, "color": COLOURS.get(card.status, INFO_COLOUR)}
    text = write(description, shares.description)
    if text:
        embed["description"] = text
    fields: list[JsonValue] = [
        {
            "name": write(name, shares.name) or ZERO_WIDTH,
            "value": write(value, shares.value) or ZERO_WIDTH,
            "inline": True,
        }
        for name, value in labelled
    ]
    if repeat is not None:
        fields.append(repeat)
    if fields:
        embed["fields"] = fields
    if footer:
        embed["footer"] = {"text": footer}
    if stamp is not None:
        embed["timestamp"] = stamp
    return embed, buttons


def _footer(context: str | None) -> tuple[str, str | None]:
    """The context line as footer text, its date as the embed's timestamp: a footer shows no
    markdown and no `<t:...>`, the timestamp beside it shows in the reader's time zone."""
    if not context:
        return "", None
    spans = parse(context)
    dates = [s for s in spans if isinstance(s, Date)]
    if not dates:
        return _plain(plain_text(spans), FOOTER_MAX), None
    try:
        when = datetime.fromtimestamp(dates[-1].epoch, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return _plain(plain_text(spans), FOOTER_MAX), None
    rest = plain_text([s for s in spans if s is not dates[-1]])
    rest = _SEPARATORS.sub(" · ", rest).strip(" ·")
    return _plain(rest, FOOTER_MAX), when


def _blocks_embed(message: Blocks) -> JsonObject:
    text = write(parse(message.text), DESCRIPTION_MAX)
    return {"description": text or ZERO_WIDTH, "color": INFO_COLOUR}


def _buttons(card: Card) -> tuple[list[JsonValue], list[list[Span]]]:
    """Link buttons in rows of five; the links no button can carry, as description lines."""
    fit = [b for b in card.buttons if size(b.url) <= BUTTON_URL_MAX]
    kept = fit[: BUTTONS_PER_ROW * ROWS_MAX]
    rows: list[JsonValue] = []
    for start in range(0, len(kept), BUTTONS_PER_ROW):
        row: list[JsonValue] = [
            {"type": 2, "style": 5, "label": _plain(b.text, LABEL_MAX) or "Open", "url": b.url}
            for b in kept[start : start + BUTTONS_PER_ROW]
        ]
        rows.append({"type": 1, "components": row})
    # the links beyond what buttons carry (too long, or more than 25) keep their place as text
    written: list[list[Span]] = [
        [Styled("bold", (Text(b.text),)), Text(" "), Link(b.url, "")]
        for b in card.buttons
        if b not in kept
    ]
    return rows, written


def _joined(parts: list[list[Span]]) -> list[Span]:
    out: list[Span] = []
    for part in parts:
        if out:
            out += [Break(), Break()]
        out += part
    return out


def _plain(text: str, limit: int) -> str:
    """Text for a place Discord shows without markdown (a footer, a label, a thread name)."""
    shown = neutral(text)
    if size(shown) <= limit:
        return shown
    return longest(shown, limit - 1).rstrip() + ELLIPSIS


@dataclass(frozen=True, slots=True)
class _Shares:
    description: int
    name: int
    value: int


def _shares(
    description: list[Span], fields: list[tuple[list[Span], list[Span]]], room: int
) -> _Shares:
    """How long the description, each field name and each field value may be so that the embed
    stays within `room` characters: the most each may have below its own limit, a field value
    a quarter of the description's, a name a quarter of a value's, found by halving."""
    wanted_description = size(write(description, DESCRIPTION_MAX))
    names = [size(write(n, FIELD_NAME_MAX)) for n, _ in fields]
    values = [size(write(v, FIELD_VALUE_MAX)) for _, v in fields]

    def total(cap: int) -> int:
        return (
            min(wanted_description, 4 * cap)
            + sum(max(1, min(n, cap // 4)) for n in names)
            + sum(max(1, min(v, cap)) for v in values)
        )

    low, high = 1, DESCRIPTION_MAX
    if total(high) <= room:
        low = high  # all of it fits (the usual case): what the halving would find
    while low < high:
        middle = (low + high + 1) // 2
        if total(middle) <= room:
            low = middle
        else:
            high = middle - 1
    return _Shares(
        description=min(DESCRIPTION_MAX, 4 * low),
        name=max(1, min(FIELD_NAME_MAX, low // 4)),
        value=max(1, min(FIELD_VALUE_MAX, low)),
    )
