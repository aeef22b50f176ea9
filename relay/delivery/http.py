"""What the chats relay reaches over plain HTTP share: one attempt with httpx, and the reading of
its answer into a classified `DeliveryResult`.

`secret_digest` is how a secret URL may appear in a pacing key, a log or a metric.
`attempt` makes exactly one request and returns the chat's `Answer`, or the classified failure
of a request that got no answer at all (timeout, connection). `failed` classifies an answer a
sender did not take as success: each chat says which statuses mean its destination is gone or
its payload refused (permanent), the rest follows HTTP (429 and 5xx are retried, never sooner
than the chat's `Retry-After`). A result's `detail` is a status (`http_404`), a platform error
code or an exception class: never the URL (a webhook URL is a secret) nor an exception message
(httpx's carry the URL).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from relay.event import JsonValue
from relay.records import DeliveryResult, Outcome, Reason


def secret_digest(secret: str) -> str:
    """16 hex digits of SHA-256: a webhook URL is a secret, and only this of it may appear in
    pacing keys, logs and metrics."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> JsonValue:
        """The body as JSON, or None when it is empty or not JSON (Teams answers 202 with no
        body at all: never assume one)."""
        if not self.body.strip():
            return None
        try:
            found: JsonValue = json.loads(self.body)
        except ValueError:
            return None
        return found

    def json_object(self) -> dict[str, Any]:
        found = self.json()
        return found if isinstance(found, dict) else {}


async def attempt(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    json_body: Mapping[str, Any] | None = None,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> Answer | DeliveryResult:
    """One request; its answer, or the failure of a request that was not answered."""
    try:
        response = await client.request(
            method,
            url,
            json=json_body,
            params=params,
            headers=headers,
            timeout=timeout,
            follow_redirects=False,
        )
    except httpx.TimeoutException as exc:
        return DeliveryResult(Outcome.RETRY, Reason.TIMEOUT, detail=type(exc).__name__)
    except httpx.HTTPError as exc:  # connection refused or reset, protocol error
        return DeliveryResult(Outcome.RETRY, Reason.CONNECTION, detail=type(exc).__name__)
    return Answer(response.status_code, response.headers, response.content)


def retry_after(answer: Answer, default: float | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (seconds; a float where Discord sends one), else
    `default` (None: the worker's own backoff decides)."""
    value = answer.headers.get("retry-after")
    if value is None:
        return default
    try:
        seconds = float(value.strip())
    except ValueError:
        return default
    return seconds if math.isfinite(seconds) and seconds >= 0 else default


def failed(
    answer: Answer,
    *,
    permanent: Mapping[int, Reason],
    detail: str | None = None,
    wait: float | None = None,
) -> DeliveryResult:
    """An answer that is not a success, classified: a status in `permanent` is given up with
    its reason; 429 is a rate limit (retried after `wait`, else the answer's `Retry-After`);
    408, 425 and 5xx are retried; any other status is a permanent unknown."""
    shown = detail or f"http_{answer.status}"
    status = answer.status
    if status in permanent:
        return DeliveryResult(Outcome.PERMANENT, permanent[status], detail=shown)
    if status == 429:
        after = wait if wait is not None else retry_after(answer)
        return DeliveryResult(Outcome.RETRY, Reason.RATE_LIMITED, retry_after=after, detail=shown)
    if status in (408, 425):
        return DeliveryResult(Outcome.RETRY, Reason.TIMEOUT, detail=shown)
    if status >= 500:
        return DeliveryResult(
            Outcome.RETRY, Reason.SERVER_ERROR, retry_after=retry_after(answer), detail=shown
        )
    return DeliveryResult(Outcome.PERMANENT, Reason.UNKNOWN, detail=shown)
