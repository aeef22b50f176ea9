"""Is a request from Slack? Its `X-Slack-Signature` (`v0=` + hex HMAC-SHA256, keyed with the
app's signing secret, of `v0:{X-Slack-Request-Timestamp}:{raw body}`) and its timestamp, within
`TOLERANCE` of now. slack-sdk's `SignatureVerifier` computes and compares (in constant time);
every configured secret is tried, so a secret can be rotated without refusing clicks. Pure: the
clock is given. The same signature seen twice is refused by the store (`relay.store.interactions`),
not here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum

from slack_sdk.signature import Clock, SignatureVerifier

TOLERANCE = 300.0  # seconds either side of now: Slack's own advice (5 minutes)
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^v0=[0-9a-f]{64}$")


class Verdict(StrEnum):
    VALID = "valid"
    UNSIGNED = "unsigned"  # a header is missing or not of Slack's form
    STALE = "stale"  # the timestamp is too far from now
    FORGED = "forged"  # no configured secret gives this signature


class _FixedClock(Clock):
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


def verify(headers: Mapping[str, str], body: bytes, secrets: Sequence[str], now: float) -> Verdict:
    """Whether `body` with these (lower-case) headers was signed by Slack with one of `secrets`."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    signature = headers.get("x-slack-signature", "")
    if not _TIMESTAMP.fullmatch(timestamp) or not _SIGNATURE.fullmatch(signature):
        return Verdict.UNSIGNED
    if abs(now - int(timestamp)) > TOLERANCE:
        return Verdict.STALE
    clock = _FixedClock(now)
    for secret in secrets:
        if SignatureVerifier(secret, clock).is_valid(body, timestamp, signature):
            return Verdict.VALID
    return Verdict.FORGED
