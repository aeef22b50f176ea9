"""Delivery: the senders that put a rendered message into Slack (Web API channel, incoming
webhook, console dry-run) and the classification of every answer into a `DeliveryResult`.

A sender makes exactly one attempt and says what happened: `sent` (with the channel ID and `ts`
Slack returned), `retry` (rate limited, 5xx, timeout, connection; with Slack's Retry-After when
given) or `permanent` (auth, channel, payload, message gone, unknown error). It never sleeps and
never retries: pacing, retry times and dead letters belong to the worker, which persists them.
`classify_slack_error` is the pure mapping from Slack's error codes, HTTP statuses and transport
exceptions to (Outcome, Reason), as listed in SLACK.md.

A result's `detail` is a Slack error code, `http_<status>` or an exception class name; it never
carries a token, a webhook URL or an exception message (aiohttp's messages contain the URL).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TextIO

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

SLACK_API_URL = "https://slack.com/api/"
DEFAULT_TIMEOUT = 10
DEFAULT_RETRY_AFTER = 1.0


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    PERMANENT = "permanent"


class Reason(StrEnum):
    """Why a delivery ended as it did; a closed set, usable as a metric label."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    AUTH = "auth"
    CHANNEL = "channel"
    INVALID_PAYLOAD = "invalid_payload"
    NOT_FOUND = "not_found"  # the message to update (or thread onto) is gone or not ours
    UNKNOWN = "unknown"
    # not Slack's answer: this replica could not renew its heartbeat in time and gave the send
    # up, before another replica could take it over (see relay.heartbeat)
    FENCED = "fenced"


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Outcome
    reason: Reason
    retry_after: float | None = None
    channel_id: str | None = None
    ts: str | None = None
    detail: str | None = None

    @classmethod
    def retry_unknown(cls, detail: str) -> DeliveryResult:
        """For a sender that raised instead of answering: retry, the cause is unknown."""
        return cls(Outcome.RETRY, Reason.UNKNOWN, detail=detail)


@dataclass(frozen=True)
class OutgoingMessage:
    """One message for one destination.

    `update_ts` set: chat.update of that message instead of a new post. `channel_id` is the
    channel ID a previous SENT result returned; chat.update needs the ID, not the name.
    """

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread_ts: str | None = None
    reply_broadcast: bool = False
    update_ts: str | None = None
    channel_id: str | None = None


class Sender(Protocol):
    """Delivers to one destination. `key` is the pacing key (one rate budget per key)."""

    key: str

    async def send(self, msg: OutgoingMessage) -> DeliveryResult: ...


RATE_LIMIT_ERRORS = frozenset({"ratelimited", "rate_limited", "message_limit_exceeded"})
SERVER_ERRORS = frozenset(
    {
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "team_added_to_org",
    }
)
AUTH_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "account_inactive",
        "not_allowed_token_type",
        "no_permission",
        "ekm_access_denied",
        "team_access_not_granted",
        "access_denied",
        # incoming webhooks: the hook itself is gone, disabled or forbidden
        "invalid_token",
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "action_prohibited",
    }
)
CHANNEL_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "channel_is_archived",
        "posting_to_general_channel_denied",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "user_not_found",
    }
)
PAYLOAD_ERRORS = frozenset(
    {
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "msg_blocks_too_long",
        "no_text",
        "invalid_payload",
        "too_many_attachments",
        "invalid_attachments",
        "invalid_arguments",
        "invalid_arg_name",
        "invalid_array_arg",
        "invalid_charset",
        "invalid_form_data",
        "invalid_post_type",
        "missing_post_type",
        "invalid_json",
        "json_not_object",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "metadata_too_large",
        "markdown_text_conflict",
    }
)
NOT_FOUND_ERRORS = frozenset(
    {
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "thread_not_found",
    }
)

_CODE_ERRORS: tuple[tuple[frozenset[str], Outcome, Reason], ...] = (
    (RATE_LIMIT_ERRORS, Outcome.RETRY, Reason.RATE_LIMITED),
    (SERVER_ERRORS, Outcome.RETRY, Reason.SERVER_ERROR),
    (AUTH_ERRORS, Outcome.PERMANENT, Reason.AUTH),
    (CHANNEL_ERRORS, Outcome.PERMANENT, Reason.CHANNEL),
    (PAYLOAD_ERRORS, Outcome.PERMANENT, Reason.INVALID_PAYLOAD),
    (NOT_FOUND_ERRORS, Outcome.PERMANENT, Reason.NOT_FOUND),
)
_ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]{0,79}$")
# Only "no such method/hook" style 4xx statuses say something without a body we understand.
_STATUS_ERRORS: Mapping[int, tuple[Outcome, Reason]] = {
    400: (Outcome.PERMANENT, Reason.INVALID_PAYLOAD),
    401: (Outcome.PERMANENT, Reason.AUTH),
    403: (Outcome.PERMANENT, Reason.AUTH),
    408: (Outcome.RETRY, Reason.TIMEOUT),
    429: (Outcome.RETRY, Reason.RATE_LIMITED),
}


def classify_slack_error(
    *,
    error: str | None = None,
    status: int | None = None,
    exception: BaseException | None = None,
) -> tuple[Outcome, Reason]:
    """Map a failed attempt to (Outcome, Reason). Pure.

    `error` is Slack's error code (Web API `error` field or a webhook's plain-text body),
    `status` the HTTP status, `exception` a transport exception (no HTTP answer at all).
    """
    if exception is not None:
        # aiohttp's ServerTimeoutError is also a ClientError: test for timeouts first.
        if isinstance(exception, TimeoutError):
            return Outcome.RETRY, Reason.TIMEOUT
        if isinstance(exception, aiohttp.ClientError | OSError):
            return Outcome.RETRY, Reason.CONNECTION
        return Outcome.PERMANENT, Reason.UNKNOWN
    if status == 429:
        return Outcome.RETRY, Reason.RATE_LIMITED
    code = (error or "").strip()
    for codes, outcome, reason in _CODE_ERRORS:
        if code in codes:
            return outcome, reason
    if status is not None and status >= 500:
        return Outcome.RETRY, Reason.SERVER_ERROR
    if status is not None and status in _STATUS_ERRORS:
        return _STATUS_ERRORS[status]
    return Outcome.PERMANENT, Reason.UNKNOWN


def parse_retry_after(
    value: str | None, default: float | None = DEFAULT_RETRY_AFTER
) -> float | None:
    """Seconds from a Retry-After header (Slack sends integer seconds); `default` if unusable."""
    if value is None:
        return default
    try:
        seconds = float(value.strip())
    except ValueError:
        return default
    return seconds if math.isfinite(seconds) and seconds >= 0 else default


def failure(
    *,
    error: str | None = None,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    exception: BaseException | None = None,
) -> DeliveryResult:
    """A DeliveryResult for a failed attempt, with a safe `detail` and Retry-After applied."""
    outcome, reason = classify_slack_error(error=error, status=status, exception=exception)
    retry_after = None
    if reason is Reason.RATE_LIMITED:
        retry_after = parse_retry_after(_header(headers, "Retry-After"))
    elif outcome is Outcome.RETRY:
        # Slack may send Retry-After with a 503; honour it when present.
        retry_after = parse_retry_after(_header(headers, "Retry-After"), default=None)
    return DeliveryResult(
        outcome, reason, retry_after=retry_after, detail=_detail(error, status, exception)
    )


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is None:  # a plain dict is case-sensitive; aiohttp's headers are not
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return value


def _detail(error: str | None, status: int | None, exception: BaseException | None) -> str:
    if exception is not None:
        return type(exception).__name__
    code = (error or "").strip()
    if _ERROR_CODE.match(code):
        return code
    return f"http_{status}" if status is not None else "no_response"


def _api_failure(exc: SlackApiError) -> DeliveryResult:
    response = exc.response
    # The response is an AsyncSlackResponse, or aiohttp's ClientResponse on an unreadable body.
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    data = getattr(response, "data", None)
    error = data.get("error") if isinstance(data, dict) else None
    return failure(
        error=error if isinstance(error, str) else None,
        status=status if isinstance(status, int) else None,
        headers=getattr(response, "headers", None),
    )


def _require_no_retry_handlers(client: AsyncWebClient | AsyncWebhookClient) -> None:
    if client.retry_handlers:
        raise ValueError(
            f"{type(client).__name__} has retry handlers "
            f"{[type(h).__name__ for h in client.retry_handlers]}; expected retry_handlers=[] "
            "because the worker schedules retries (use relay.deliver.web_client/webhook_client)."
        )


def web_client(
    token: str, *, base_url: str = SLACK_API_URL, timeout: int = DEFAULT_TIMEOUT
) -> AsyncWebClient:
    """An AsyncWebClient that makes exactly one attempt per call."""
    return AsyncWebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=[])


def webhook_client(url: str, *, timeout: int = DEFAULT_TIMEOUT) -> AsyncWebhookClient:
    """An AsyncWebhookClient that makes exactly one attempt per call."""
    return AsyncWebhookClient(url=url, timeout=timeout, retry_handlers=[])


_TRANSPORT_ERRORS = (TimeoutError, aiohttp.ClientError, OSError)
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")


class SlackChannelSender:
    """Posts to one channel through the Web API (chat.postMessage, chat.update)."""

    def __init__(self, client: AsyncWebClient, channel: str) -> None:
        _require_no_retry_handlers(client)
        self.client = client
        self.channel = channel
        self.key = f"slack:{channel}"
        # chat.update needs the ID; learn it from the first post when configured by name.
        self._channel_id = channel if _CHANNEL_ID.match(channel) else None

    async def send(self, msg: OutgoingMessage) -> DeliveryResult:
        try:
            if msg.update_ts is not None:
                response = await self.client.chat_update(
                    channel=msg.channel_id or self._channel_id or self.channel,
                    ts=msg.update_ts,
                    text=msg.text,
                    # An explicit [] clears old blocks; omitting them would keep them.
                    blocks=msg.blocks,
                )
            else:
                response = await self.client.chat_postMessage(
                    channel=self.channel,
                    text=msg.text,
                    blocks=msg.blocks or None,
                    thread_ts=msg.thread_ts,
                    reply_broadcast=True if msg.reply_broadcast and msg.thread_ts else None,
                    unfurl_links=False,
                    unfurl_media=False,
                )
        except SlackApiError as exc:
            return _api_failure(exc)
        except _TRANSPORT_ERRORS as exc:
            return failure(exception=exc)
        channel_id, ts = response.get("channel"), response.get("ts")
        if isinstance(channel_id, str):
            self._channel_id = channel_id
        return DeliveryResult(
            Outcome.SENT,
            Reason.OK,
            channel_id=channel_id if isinstance(channel_id, str) else None,
            ts=ts if isinstance(ts, str) else None,
        )


class SlackWebhookSender:
    """Posts through one incoming webhook. Its answers carry no ts: no threads, no updates."""

    def __init__(self, client: AsyncWebhookClient) -> None:
        _require_no_retry_handlers(client)
        self.client = client
        # The URL is a secret: only a short digest of it may appear in keys, logs and metrics.
        self.key = "webhook:" + hashlib.sha256(client.url.encode()).hexdigest()[:12]

    async def send(self, msg: OutgoingMessage) -> DeliveryResult:
        if msg.update_ts is not None:
            return DeliveryResult(
                Outcome.PERMANENT, Reason.NOT_FOUND, detail="webhook_cannot_update"
            )
        body: dict[str, Any] = {"text": msg.text, "unfurl_links": False, "unfurl_media": False}
        if msg.blocks:
            body["blocks"] = msg.blocks
        if msg.thread_ts is not None:
            body["thread_ts"] = msg.thread_ts
        try:
            response = await self.client.send_dict(body)
        except _TRANSPORT_ERRORS as exc:
            return failure(exception=exc)
        if 200 <= response.status_code < 300:
            return DeliveryResult(Outcome.SENT, Reason.OK)
        return failure(error=response.body, status=response.status_code, headers=response.headers)


class ConsoleSender:
    """Dry-run: prints each message as one JSON line instead of posting it."""

    def __init__(
        self, stream: TextIO, destination: str = "console", channel: str | None = None
    ) -> None:
        self.stream = stream
        self.destination = destination
        self.channel = channel
        self.key = f"console:{destination}"
        self._count = 0

    async def send(self, msg: OutgoingMessage) -> DeliveryResult:
        line: dict[str, Any] = {
            "destination": self.destination,
            "channel": self.channel,
            "text": msg.text,
            "blocks": msg.blocks,
            "thread_ts": msg.thread_ts,
        }
        if msg.reply_broadcast:
            line["reply_broadcast"] = True
        if msg.update_ts is not None:
            line["update_ts"] = msg.update_ts
        self.stream.write(json.dumps(line, ensure_ascii=False) + "\n")
        self.stream.flush()
        if msg.update_ts is not None:
            ts = msg.update_ts
        else:
            # A Slack-shaped, increasing ts so that dry-run threads and updates still line up.
            self._count += 1
            ts = f"0000000000.{self._count:06d}"
        return DeliveryResult(Outcome.SENT, Reason.OK, channel_id=self.channel, ts=ts)
