"""Mattermost: the senders that put a rendered message into a channel through an incoming webhook
or through the REST API as a bot, and the classification of every answer Mattermost gives.

Webhook mode: `POST {server}/hooks/{key}` with `{text, attachments}` (and `username`,
`icon_url` when configured), answered `200 ok` (text/plain): there is no post id, so relay never
replies under nor updates a message it posted this way (every message is a flat post).

API mode: `POST {server}/api/v4/posts` with `Authorization: Bearer <bot token>` and
`{channel_id, message, props: {attachments}, root_id}` is answered 201 with the post, whose `id`
relay keeps as the message's `ts`: a reply names its thread's first post as `root_id`, an update
is `PUT {server}/api/v4/posts/{id}/patch`. Mattermost has no "also send to the channel" for a
reply (with collapsed threads off, every reply shows in the channel anyway): `broadcast` is not
sent.

Every error answer is JSON `{"id": "<error id>", "message", "detailed_error", "request_id",
"status_code"}` (`model.AppError`); the `id` is the result's `detail` (never the message, whose
`detailed_error` can carry the hook's id). The statuses and ids below are read in the server's
source (mattermost/mattermost: `app/webhook.go` HandleIncomingWebhook, `web/webhook.go`,
`api4/post.go` createPost and patchPost, `app/ratelimit.go`), where the documentation says none:
- a deleted or unknown hook: 400 `web.incoming_webhook.invalid.app_error` (any failure to load
  the hook), webhooks disabled: 501 `web.incoming_webhook.disabled.app_error`, its creator gone
  or without access: 403: the destination is gone (auth, permanent). Any other 401/403/404 from
  a webhook URL, with no id (a proxy, a removed route), is taken the same way.
- a bad token: 401 `api.context.session_expired.app_error`; a channel that does not exist or the
  bot is not in: 403 `api.context.permissions.app_error` (permanent).
- a patch of a post that is gone (deleted, or not found): patchPost answers 403
  `api.context.permissions.app_error` before anything else (it masks "not found"), the app layer
  404 `app.post.get.app_error` or 400 `api.post.update_post.permissions_details.app_error`; past
  the server's edit time limit 400 `api.post.update_post.permissions_time_limit.app_error`. Each
  is `not_found`: the worker forgets the message and posts the new state anew.
- a reply whose thread's first post is gone: 400 `api.post.create_post.root_id.app_error`
  (`not_found`, permanent: relay cannot thread it).
- rate limiting, off unless the server enables it (10 requests/s, burst 100 by default, per
  token or address): 429 `limit exceeded` with `X-RateLimit-Limit`, `-Remaining`, `-Reset`
  (seconds until the budget is whole) and `Retry-After` (seconds, rounded up): relay waits
  `Retry-After`, else `X-RateLimit-Reset`, else its own backoff.
- 5xx (a webhook's failed post is 500 `api.post.create_webhook_post.creating.app_error`) and
  timeouts are retried.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from relay.config import MattermostDestination
from relay.delivery.console import ConsoleSender
from relay.delivery.http import Answer, attempt, failed, retry_after, secret_digest
from relay.delivery.senders import Sender
from relay.event import JsonValue
from relay.records import DeliveryResult, Outcome, Outgoing, Reason
from relay.render.formats.mattermost import payload

if TYPE_CHECKING:
    from relay.delivery.destinations import Clients

# Mattermost limits nothing unless its admin enables rate limiting (then 10 requests/s with a
# burst of 100, per token or client address, over every hook and channel of the server):
# 2 a second with a burst of 10 per hook or channel keeps five busy destinations of one
# server within that, and is still brisk to read.
PACING = (2.0, 10.0)

_ERROR_ID = re.compile(r"^[A-Za-z0-9_.]{1,120}$")
_POST_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")

# error ids whose meaning does not follow from the status alone
_IDS: Mapping[str, Reason] = {
    "web.incoming_webhook.invalid.app_error": Reason.AUTH,
    "web.incoming_webhook.disabled.app_error": Reason.AUTH,
    "web.incoming_webhook.user.app_error": Reason.AUTH,
    "web.incoming_webhook.permissions.app_error": Reason.AUTH,
    "web.incoming_webhook.channel.app_error": Reason.CHANNEL,
    "web.incoming_webhook.channel_locked.app_error": Reason.CHANNEL,
    "app.channel.get.existing.app_error": Reason.CHANNEL,
    "api.post.create_post.can_not_post_to_deleted.error": Reason.CHANNEL,
    "api.post.create_post.town_square_read_only": Reason.CHANNEL,
    "api.post.patch_post.can_not_update_post_in_deleted.error": Reason.CHANNEL,
    "api.post.create_post.root_id.app_error": Reason.NOT_FOUND,
    "api.post.create_post.channel_root_id.app_error": Reason.NOT_FOUND,
}
# on a patch, these say that the post cannot be edited any more: post the new state anew
_GONE_POST = frozenset(
    {
        "api.context.permissions.app_error",
        "app.post.get.app_error",
        "api.post.update_post.find.app_error",
        "api.post.update_post.permissions_details.app_error",
        "api.post.update_post.permissions_time_limit.app_error",
    }
)

WEBHOOK_STATUSES: Mapping[int, Reason] = {
    400: Reason.INVALID_PAYLOAD,
    401: Reason.AUTH,
    403: Reason.AUTH,
    404: Reason.AUTH,
    413: Reason.INVALID_PAYLOAD,
}
POST_STATUSES: Mapping[int, Reason] = {
    400: Reason.INVALID_PAYLOAD,
    401: Reason.AUTH,
    403: Reason.CHANNEL,
    404: Reason.CHANNEL,
    413: Reason.INVALID_PAYLOAD,
}
PATCH_STATUSES: Mapping[int, Reason] = {
    **POST_STATUSES,
    403: Reason.NOT_FOUND,
    404: Reason.NOT_FOUND,
}


def error_id(answer: Answer) -> str | None:
    """The `id` of Mattermost's error body, when it has one that reads as an id."""
    found = answer.json_object().get("id")
    return found if isinstance(found, str) and _ERROR_ID.match(found) else None


def classify(
    answer: Answer, statuses: Mapping[int, Reason], *, patch: bool = False
) -> DeliveryResult:
    """A non-success answer as a result: by its error id where that says more than its status."""
    found = error_id(answer)
    if answer.status == 429:
        reset = _seconds(answer.headers.get("x-ratelimit-reset"))
        return failed(answer, permanent={}, detail=found, wait=retry_after(answer, reset))
    reason = _IDS.get(found or "")
    if patch and found in _GONE_POST:
        reason = Reason.NOT_FOUND
    if reason is not None:
        return DeliveryResult(Outcome.PERMANENT, reason, detail=found)
    return failed(answer, permanent=statuses, detail=found)


def _seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < 86400 else None


class MattermostWebhookSender:
    """Posts through one incoming webhook: flat posts only (its answer carries no post id)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        *,
        username: str | None = None,
        icon_url: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.client = client
        self.url = url
        self.username = username
        self.icon_url = icon_url
        self.timeout = timeout

    async def send(self, out: Outgoing) -> DeliveryResult:
        # a reply or an update cannot be asked of a webhook: the new state is posted flat
        native = payload(out.message)
        body: dict[str, Any] = {"text": native["text"]}
        if native["attachments"]:
            body["attachments"] = native["attachments"]
        if self.username is not None:
            body["username"] = self.username
        if self.icon_url is not None:
            body["icon_url"] = self.icon_url
        answer = await attempt(self.client, "POST", self.url, json_body=body, timeout=self.timeout)
        if isinstance(answer, DeliveryResult):
            return answer
        if answer.ok:
            return DeliveryResult(Outcome.SENT, Reason.OK)
        return classify(answer, WEBHOOK_STATUSES)


class MattermostApiSender:
    """Posts to one channel as a bot through the REST API: replies in threads (`root_id`) and
    updates in place (patch), with the post's id as the message's `ts`."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        server: str,
        token: str,
        channel_id: str,
        *,
        timeout: float = 10.0,
    ) -> None:
        self.client = client
        self.server = server.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}
        self.channel_id = channel_id
        self.timeout = timeout

    async def send(self, out: Outgoing) -> DeliveryResult:
        native = payload(out.message)
        props: dict[str, JsonValue] = {"attachments": list(native["attachments"])}
        if out.update is not None:
            if not _POST_ID.match(out.update.ts):  # not a Mattermost post id: nothing to edit
                return DeliveryResult(Outcome.PERMANENT, Reason.NOT_FOUND, detail="not_a_post_id")
            url = f"{self.server}/api/v4/posts/{out.update.ts}/patch"
            body: dict[str, Any] = {"message": native["text"], "props": props}
            answer = await self._call("PUT", url, body)
            statuses, patch = PATCH_STATUSES, True
        else:
            body = {"channel_id": self.channel_id, "message": native["text"], "props": props}
            if out.reply_to is not None:
                body["root_id"] = out.reply_to.ts
            answer = await self._call("POST", f"{self.server}/api/v4/posts", body)
            statuses, patch = POST_STATUSES, False
        if isinstance(answer, DeliveryResult):
            return answer
        if not answer.ok:
            return classify(answer, statuses, patch=patch)
        post = answer.json_object()
        post_id, channel_id = post.get("id"), post.get("channel_id")
        return DeliveryResult(
            Outcome.SENT,
            Reason.OK,
            channel_id=channel_id if isinstance(channel_id, str) else self.channel_id,
            ts=post_id if isinstance(post_id, str) and post_id else None,
        )

    async def _call(self, method: str, url: str, body: dict[str, Any]) -> Answer | DeliveryResult:
        return await attempt(
            self.client, method, url, json_body=body, headers=self.headers, timeout=self.timeout
        )


# ---------------------------------------------------------------- the destination kind


def api_mode(destination: MattermostDestination) -> bool:
    """Threads and updates need the API: an incoming webhook answers no post id."""
    return destination.mode == "api"


def pace_key(destination: MattermostDestination, dry_run: bool) -> str:
    """Per hook (a digest of its URL, a secret) or per server and channel."""
    del dry_run  # a Mattermost destination carries its own credentials
    d = destination
    if d.mode == "webhook":
        if d.webhook_url is None:
            return "console"
        return f"mattermost:{secret_digest(d.webhook_url.get_secret_value())}"
    if d.token is None:
        return "console"
    return f"mattermost:{str(d.url).split('://', 1)[1]}/{d.channel_id}"


def describe(destination: MattermostDestination, dry_run: bool) -> str:
    del dry_run
    d = destination
    if d.mode == "webhook":
        return "mattermost incoming webhook" + ("" if d.webhook_url else " (no URL: console)")
    return f"mattermost {d.url} channel {d.channel_id}" + (
        "" if d.token else " (no token: console)"
    )


def sender(name: str, destination: MattermostDestination, clients: Clients) -> Sender:
    d = destination
    secret = d.webhook_url if d.mode == "webhook" else d.token
    if secret is None:
        return ConsoleSender(
            clients.console,
            name,
            d.channel_id,
            chat="mattermost",
            format=payload,
            style=clients.console_style,
        )
    if clients.http is None:
        raise ValueError(f"destination {name!r} (mattermost) needs the HTTP client of Clients")
    if d.mode == "webhook":
        return MattermostWebhookSender(
            clients.http,
            secret.get_secret_value(),
            username=d.username,
            icon_url=d.icon_url,
            timeout=clients.timeout,
        )
    return MattermostApiSender(
        clients.http,
        str(d.url),
        secret.get_secret_value(),
        str(d.channel_id),
        timeout=clients.timeout,
    )


def warnings(destination: MattermostDestination) -> list[str]:
    """Any host is fine (Mattermost is self-hosted); plain http is worth a second look."""
    d = destination
    out = []
    if d.webhook_url is not None:
        url = d.webhook_url.get_secret_value()
        if url.startswith("http://"):
            out.append(
                "webhook_url uses plain http: the hook's key and every message travel unencrypted"
            )
        if not re.search(r"/hooks/[A-Za-z0-9]+/?$", url):
            out.append(
                "webhook_url does not end in /hooks/<key>: Mattermost's incoming webhooks do"
            )
    if d.url is not None and d.url.startswith("http://"):
        out.append("url uses plain http: the bot token and every message travel unencrypted")
    return out
