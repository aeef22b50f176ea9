"""Anchor Browser webhooks: the `Anchor-Signature` check and the `{id, type, created, ...}` body.

Signed content is `v0:{t}:{raw body}`, HMAC-SHA256, hex; the header may carry several `v1=`
entries and relay may hold several secrets (rotation keeps the old one valid for 24 h), so every
entry is tried with every key. The docs' example keys the HMAC with the secret's UTF-8 bytes but
the secret looks like hex; whether the hex-decoded bytes are meant is unconfirmed, so
`key_encoding="both"` (the default) accepts either.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from typing import ClassVar, Literal

from relay.config import AnchorSource
from relay.errors import Unauthorized
from relay.event import Event
from relay.providers.base import (
    HEX_DIGEST,
    MAX_JSON_DEPTH,
    Headers,
    check_timestamp,
    envelope_event,
    hmac_hex,
    json_object,
    lower_keys,
)

KeyEncoding = Literal["utf8", "hex", "both"]
_HEX_SECRET = re.compile(r"(?:[0-9a-fA-F]{2})+")


def signing_keys(secrets: Sequence[str], key_encoding: str) -> list[bytes]:
    """The HMAC keys to try, in order; a secret that is not hex yields no hex key."""
    if key_encoding not in ("utf8", "hex", "both"):
        raise ValueError(f"key_encoding '{key_encoding}' is not one of utf8, hex, both")
    keys: list[bytes] = []
    for secret in secrets:
        if key_encoding in ("utf8", "both"):
            keys.append(secret.encode())
        if key_encoding in ("hex", "both") and _HEX_SECRET.fullmatch(secret):
            keys.append(bytes.fromhex(secret))
        elif key_encoding == "hex":
            raise ValueError("key_encoding 'hex' needs secrets of hex digits")
    return keys


class AnchorProvider:
    kind: ClassVar[str] = "anchor"

    def __init__(
        self,
        source: str,
        secrets: Sequence[str],
        tolerance_s: float = 120,
        key_encoding: KeyEncoding = "both",
        max_json_depth: int = MAX_JSON_DEPTH,
    ) -> None:
        self.source = source
        self.max_json_depth = max_json_depth
        self.tolerance_s = tolerance_s
        self._keys = signing_keys([s for s in secrets if s], key_encoding)

    @classmethod
    def from_config(cls, name: str, source: AnchorSource, max_json_depth: int) -> AnchorProvider:
        return cls(
            name,
            [s.get_secret_value() for s in source.secrets],
            tolerance_s=source.tolerance,
            key_encoding=source.key_encoding,
            max_json_depth=max_json_depth,
        )

    def verify(self, headers: Headers, body: bytes, now: float) -> None:
        h = lower_keys(headers)
        if not self._keys:
            raise Unauthorized(f"source '{self.source}' has no Anchor secret configured")
        header = h.get("anchor-signature")
        if not header:
            raise Unauthorized("missing Anchor-Signature header")
        ts, digests = _parse_signature(header)
        sent_ts = h.get("anchor-timestamp")
        if sent_ts is not None and sent_ts.strip() != ts:
            raise Unauthorized("Anchor-Timestamp does not match the t= of Anchor-Signature")
        message = b"v0:" + ts.encode() + b":" + body
        expected = [hmac_hex(key, message).encode() for key in self._keys]
        # no early exit: every (entry, key) pair is compared so timing says nothing about which
        matched = False
        for digest in digests:
            for want in expected:
                matched |= hmac.compare_digest(digest, want)
        if not matched:
            raise Unauthorized("Anchor-Signature does not match the body")
        check_timestamp(ts, now, self.tolerance_s, "Anchor-Signature timestamp")

    def parse(self, headers: Headers, body: bytes) -> list[Event]:
        obj = json_object(body, self.max_json_depth)
        return [envelope_event(self, obj, body, created="created", text="text")]


def _parse_signature(header: str) -> tuple[str, list[bytes]]:
    """`t=<ts>,v1=<hex>[,v1=<hex>...]` -> (ts, lower-case hex digests); other schemes ignored."""
    ts: str | None = None
    digests: list[bytes] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        value = value.strip()
        if key == "t":
            if ts is not None:
                raise Unauthorized("Anchor-Signature has more than one t=")
            ts = value
        elif key == "v1" and HEX_DIGEST.fullmatch(value):
            digests.append(value.lower().encode())
    if ts is None:
        raise Unauthorized("Anchor-Signature has no t= timestamp")
    if not ts.isascii() or not ts.isdigit():
        raise Unauthorized(f"Anchor-Signature t= must be unix seconds, got '{ts[:40]}'")
    if not digests:
        raise Unauthorized("Anchor-Signature has no v1= signature")
    return ts, digests
