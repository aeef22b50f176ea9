"""What every sender is: one attempt at putting one message into one chat, classified.

The worker hands a sender an `Outgoing`: the rendered message and how it joins its
conversation (a reply under a thread's parent, an edit of a message already posted). The
sender makes exactly one attempt and answers a `DeliveryResult`: `sent` (with the id the chat
gave the message, when it gives one), `retry` (rate limited, 5xx, timeout, connection; with the
chat's Retry-After when given) or `permanent` (auth, channel, payload, message gone, unknown).
It never sleeps and never retries: pacing, retry times and dead letters belong to the worker,
which persists them. A result's `detail` is an error code, `http_<status>` or an exception
class name; it never carries a token, a webhook URL or an exception message.

There is one sender module per kind of destination (`slack`, `console`), and
`relay.delivery.destinations` knows which builds which.
"""

from __future__ import annotations

from typing import Protocol

from relay.records import DeliveryResult, Outgoing


class Sender(Protocol):
    """Delivers to one destination."""

    async def send(self, out: Outgoing) -> DeliveryResult: ...
