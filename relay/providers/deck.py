"""Deck event destinations: Standard Webhooks signatures and the `{id, object, type, data}` event.

The `standardwebhooks` package computes the signature, but its `verify()` reads the real clock
and lets malformed headers escape as `ValueError`; so relay checks the timestamp itself against
the injected `now` and compares each `v1,<base64>` entry in constant time, turning every
problem with the request into `Unauthorized`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar

from standardwebhooks.webhooks import Webhook

from relay.config import DeckSource
from relay.errors import Unauthorized
from relay.event import Event
from relay.providers.base import (
    MAX_JSON_DEPTH,
    Headers,
    check_timestamp,
    envelope_event,
    json_object,
    lower_keys,
)


class DeckProvider:
    kind: ClassVar[str] = "deck"

    def __init__(
        self,
        source: str,
        secrets: Sequence[str],
        tolerance_s: float = 300,
        max_json_depth: int = MAX_JSON_DEPTH,
    ) -> None:
        self.source = source
        self.max_json_depth = max_json_depth
        self.tolerance_s = tolerance_s
        self._hooks = [Webhook(s) for s in secrets if s]

    @classmethod
    def from_config(cls, name: str, source: DeckSource, max_json_depth: int) -> DeckProvider:
        return cls(
            name,
            [s.get_secret_value() for s in source.secrets],
            tolerance_s=source.tolerance,
            max_json_depth=max_json_depth,
        )

    def verify(self, headers: Headers, body: bytes, now: float) -> None:
        h = lower_keys(headers)
        if not self._hooks:
            raise Unauthorized(f"source '{self.source}' has no Deck secret configured")
        msg_id = h.get("webhook-id", "")
        raw_ts = h.get("webhook-timestamp", "")
        header = h.get("webhook-signature", "")
        for name, value in (
            ("webhook-id", msg_id),
            ("webhook-timestamp", raw_ts),
            ("webhook-signature", header),
        ):
            if not value.strip():
                raise Unauthorized(f"missing {name} header")
        ts = check_timestamp(raw_ts, now, self.tolerance_s, "webhook-timestamp")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Unauthorized("body is not UTF-8, so it cannot carry a valid signature") from None
        given = _signatures(header)
        if not given:
            raise Unauthorized("webhook-signature has no well-formed v1,<base64> entry")
        when = datetime.fromtimestamp(ts, tz=UTC)
        matched = False
        for hook in self._hooks:
            try:
                expected = base64.b64decode(hook.sign(msg_id, when, text).partition(",")[2])
            except UnicodeEncodeError:
                raise Unauthorized("webhook-id is not valid text") from None
            for sig in given:
                matched |= hmac.compare_digest(sig, expected)
        if not matched:
            raise Unauthorized("webhook-signature does not match the body")

    def parse(self, headers: Headers, body: bytes) -> list[Event]:
        obj = json_object(body, self.max_json_depth)
        return [envelope_event(self, obj, body, created="created_at")]


def _signatures(header: str) -> list[bytes]:
    """The decoded digests of the space-separated `v1,<base64>` entries; others are skipped."""
    found: list[bytes] = []
    for entry in header.split():
        version, sep, sig = entry.partition(",")
        if version != "v1" or not sep:
            continue
        try:
            found.append(base64.b64decode(sig, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found
