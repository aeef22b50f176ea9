"""Slack interactivity (issue 15): buttons on a route's Slack messages that act from the chat.

`signature` checks that a request comes from Slack (its v0 HMAC signature and timestamp, with
every configured signing secret); `clicks` reads a verified `block_actions` payload into a typed
`Click`, refusing anything else; `blocks` builds the buttons relay puts on a message and the
notice it updates the message with ("Muted by <@U…> until 16:05 UTC", "<@U…> is on it"). All
three are pure. The replay guard and the outbox row a click refers to are in
`relay.store.interactions`, what a click does (create or expire a silence) in
`relay.ops.interactions`, the endpoint `POST /slack/interactions` in `relay.http.interactions`.
"""

from __future__ import annotations

from relay.interactions.blocks import Notice, NoticeKind, with_buttons, with_notice
from relay.interactions.clicks import Action, Click, MalformedClick, UnknownAction, parse_click
from relay.interactions.signature import TOLERANCE, Verdict, verify

__all__ = [
    "TOLERANCE",
    "Action",
    "Click",
    "MalformedClick",
    "Notice",
    "NoticeKind",
    "UnknownAction",
    "Verdict",
    "parse_click",
    "verify",
    "with_buttons",
    "with_notice",
]
