"""Test helper: what relay's renderer makes of an event, as Slack would be sent it.

`SlackRenderer` renders like `relay.render.renderer.Renderer` and formats the message for Slack
(`relay.render.formats.slack.payload`), with mentions given in Slack's form (`<!here> <@U1>`)
turned into the config's names, so that tests can read `text` and `blocks` as Slack gets them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from relay.event import Event
from relay.messages import Message
from relay.render.formats.slack import payload
from relay.render.renderer import Rendered, Renderer

_MENTION = re.compile(r"<(!subteam\^|@|!)([^>]*)>")


def names(mention: str | None) -> tuple[str, ...]:
    """`<!here> <@U1> <!subteam^S1>` -> `("@here", "U1", "S1")`."""
    return tuple(
        ("@" if kind == "!" else "") + name for kind, name in _MENTION.findall(mention or "")
    )


@dataclass(frozen=True)
class SlackView:
    text: str
    blocks: list[dict[str, Any]]
    template: str
    error: str | None
    message: Message


def view(rendered: Rendered, mention: str | None = None) -> SlackView:
    message = replace(rendered.message, mentions=names(mention))
    native = payload(message)
    blocks = [dict(b) for b in native["blocks"]]
    return SlackView(native["text"], blocks, rendered.template, rendered.error, message)


class SlackRenderer:
    def __init__(self, user_dir: Path | None = None) -> None:
        self.inner = Renderer(user_dir)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def render(
        self,
        event: Event,
        *,
        template: str | None = None,
        mention: str | None = None,
        full_ids: bool = False,
    ) -> SlackView:
        return view(self.inner.render(event, template=template, full_ids=full_ids), mention)
