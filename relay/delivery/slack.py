"""Slack: the senders that put a rendered message into a channel (Web API) or through an
incoming webhook, and the classification of every answer Slack gives into a `DeliveryResult`.

`classify_slack_error` is the pure mapping from Slack's error codes, HTTP statuses and transport
exceptions to (Outcome, Reason), as listed in SLACK.md. A result's `detail` is a Slack error
code, `http_<status>` or an exception class name, never an exception message (aiohttp's carry
the URL, and a webhook URL is a secret).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from relay.interactions.blocks import with_buttons
from relay.records import DeliveryResult, Outcome, Outgoing, Reason
from relay.render.formats.slack import payload

SLACK_API_URL = "https://slack.com/api/"
DEFAULT_TIMEOUT = 10
DEFAULT_RETRY_AFTER = 1.0
# slack-sdk decides whether to format a request's URL, body and headers for its debug log by its
# logger's own level, not the effective one: its clients' default loggers (level unset) format
# them on every request, only for logging to drop the line (about 2% of a delivery process's CPU
# in bench/e2e.py). "slack_sdk" is the logger relay's logging holds at WARNING.
_SDK_LOG = logging.getLogger("slack_sdk")


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
            "because the worker schedules retries (use relay.delivery.slack.web_client or "
            "webhook_client)."
        )


def web_client(
    token: str, *, base_url: str = SLACK_API_URL, timeout: int = DEFAULT_TIMEOUT
) -> AsyncWebClient:
    """An AsyncWebClient that makes exactly one attempt per call."""
    return AsyncWebClient(
        token=token, base_url=base_url, timeout=timeout, retry_handlers=[], logger=_SDK_LOG
    )


def webhook_client(url: str, *, timeout: int = DEFAULT_TIMEOUT) -> AsyncWebhookClient:
    """An AsyncWebhookClient that makes exactly one attempt per call."""
    return AsyncWebhookClient(url=url, timeout=timeout, retry_handlers=[], logger=_SDK_LOG)


_TRANSPORT_ERRORS = (TimeoutError, aiohttp.ClientError, OSError)
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")


class Sessions:
    """The one aiohttp session every Slack client of the process uses, made in the running event
    loop when first needed. Without a session slack-sdk's clients open a new one, and so a new
    connection (with its TLS handshake to slack.com), for every request; with it they keep their
    connections alive (bench/e2e.py measures the difference)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class SlackChannelSender:
    """Posts to one channel through the Web API (chat.postMessage, chat.update)."""

    def __init__(
        self, client: AsyncWebClient, channel: str, sessions: Sessions | None = None
    ) -> None:
        _require_no_retry_handlers(client)
        self.client = client
        self.sessions = sessions
        self.channel = channel
        # chat.update needs the ID; learn it from the first post when configured by name.
        self._channel_id = channel if _CHANNEL_ID.match(channel) else None

    async def send(self, out: Outgoing) -> DeliveryResult:
        native = payload(out.message)
        text, blocks = native["text"], native["blocks"]
        if out.buttons and out.row_id is not None:  # the route's buttons (relay.interactions)
            blocks = with_buttons(blocks, out.buttons, out.row_id)
        if self.sessions is not None:
            self.client.session = self.sessions.get()
        try:
            if out.update is not None:
                response = await self.client.chat_update(
                    channel=out.update.channel_id or self._channel_id or self.channel,
                    ts=out.update.ts,
                    text=text,
                    # An explicit [] clears old blocks; omitting them would keep them.
                    blocks=blocks,
                )
            else:
                thread_ts = out.reply_to.ts if out.reply_to is not None else None
                response = await self.client.chat_postMessage(
                    channel=self.channel,
                    text=text,
                    blocks=blocks or None,
                    thread_ts=thread_ts,
                    reply_broadcast=True if out.broadcast and thread_ts else None,
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
    """Posts through one incoming webhook. Its answers carry no ts, so relay never threads
    under nor updates a message it posted this way: every message is a flat post."""

    def __init__(self, client: AsyncWebhookClient, sessions: Sessions | None = None) -> None:
        _require_no_retry_handlers(client)
        self.client = client
        self.sessions = sessions

    async def send(self, out: Outgoing) -> DeliveryResult:
        if self.sessions is not None:
            self.client.session = self.sessions.get()
        native = payload(out.message)
        body: dict[str, Any] = {
            "text": native["text"],
            "unfurl_links": False,
            "unfurl_media": False,
        }
        if native["blocks"]:
            body["blocks"] = native["blocks"]
        try:
            response = await self.client.send_dict(body)
        except _TRANSPORT_ERRORS as exc:
            return failure(exception=exc)
        if 200 <= response.status_code < 300:
            return DeliveryResult(Outcome.SENT, Reason.OK)
        return failure(error=response.body, status=response.status_code, headers=response.headers)
