"""Dry-run: the sender that prints each message instead of posting it.

Destinations without credentials (no Slack token, a webhook without a URL, `type: console`)
deliver here, so relay runs end to end with nothing configured. It prints the message as a
person reads it (`relay.render.formats.text`: `style="text"`, what `relay serve` does unless
`RELAY_DRY_RUN_FORMAT=json`) or as one JSON line holding the chat's native payload
(`style="json"`, for scripts and the tests that read the payload). It answers like Slack's Web
API does (a channel and an increasing `ts`), so threads and updates still line up in the output.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Literal, TextIO

from relay.messages import Message
from relay.records import DeliveryResult, Outcome, Outgoing, Reason
from relay.render.formats.slack import payload
from relay.render.formats.text import Where, readable

Style = Literal["text", "json"]
STYLES: tuple[Style, ...] = ("text", "json")


class ConsoleSender:
    """Prints what `chat` would be sent (its native payload, `format`) instead of sending it."""

    def __init__(
        self,
        stream: TextIO,
        destination: str = "console",
        channel: str | None = None,
        *,
        chat: str = "slack",
        format: Callable[[Message], Mapping[str, Any]] = payload,
        style: Style = "json",
    ) -> None:
        self.stream = stream
        self.destination = destination
        self.channel = channel
        self.chat = chat
        self.format = format
        self.style = style
        self._count = 0

    async def send(self, out: Outgoing) -> DeliveryResult:
        if self.style == "text":
            self.stream.write(readable(out.message, self._where(out)))
        else:
            self._write_json(out)
        self.stream.flush()
        if out.update is not None:
            ts = out.update.ts
        else:
            # A Slack-shaped, increasing ts so that dry-run threads and updates still line up.
            self._count += 1
            ts = f"0000000000.{self._count:06d}"
        return DeliveryResult(Outcome.SENT, Reason.OK, channel_id=self.channel, ts=ts)

    def _where(self, out: Outgoing) -> Where:
        return Where(
            self.destination,
            self.chat,
            self.channel,
            reply_to=out.reply_to.ts if out.reply_to is not None else None,
            update=out.update.ts if out.update is not None else None,
            broadcast=out.broadcast,
        )

    def _write_json(self, out: Outgoing) -> None:
        line: dict[str, Any] = {
            "destination": self.destination,
            **({"chat": self.chat} if self.chat != "slack" else {}),
            "channel": self.channel,
            **self.format(out.message),
            "thread_ts": out.reply_to.ts if out.reply_to is not None else None,
        }
        if out.broadcast and out.reply_to is not None:
            line["reply_broadcast"] = True
        if out.update is not None:
            line["update_ts"] = out.update.ts
        self.stream.write(json.dumps(line, ensure_ascii=False) + "\n")
