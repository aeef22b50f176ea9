"""Sign test requests the way Anchor and Deck do (test-only helpers, obvious test secrets)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

ANCHOR_SECRET = "36da51b166a69268a59a8d5ee0b32c9f5e5aaee7d301c7a5a36844318e116fc6"
DECK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ADMIN_TOKEN = "test-admin-token"
SLACK_TOKEN = "xoxb-test-token"
SLACK_SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # the form of Slack's own example


def slack_headers(body: bytes, ts: int, secret: str = SLACK_SIGNING_SECRET) -> dict[str, str]:
    """Headers as Slack signs a request to an app: v0 HMAC-SHA256 over `v0:{ts}:{body}`."""
    digest = hmac.new(secret.encode(), b"v0:" + str(ts).encode() + b":" + body, hashlib.sha256)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
    }


def anchor_headers(
    body: bytes, ts: int, secret: str = ANCHOR_SECRET, event: str = ""
) -> dict[str, str]:
    digest = hmac.new(secret.encode(), b"v0:" + str(ts).encode() + b":" + body, hashlib.sha256)
    return {
        "Content-Type": "application/json",
        "User-Agent": "Anchor-Webhooks/1.0",
        "Anchor-Event": event,
        "Anchor-Timestamp": str(ts),
        "Anchor-Signature": f"t={ts},v1={digest.hexdigest()}",
    }


def deck_headers(
    body: bytes, ts: int, msg_id: str = "msg_test", secret: str = DECK_SECRET
) -> dict[str, str]:
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, tz=UTC), body.decode())
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature,
    }
