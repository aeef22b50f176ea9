"""Google Chat: the sender that posts through a space's incoming webhook, the reading of every
answer Google gives into a `DeliveryResult`, and how such a destination is paced, described and
checked (its entry in `relay.delivery.destinations.KINDS`).

`POST https://chat.googleapis.com/v1/spaces/{SPACE}/messages?key=KEY&token=TOKEN` with the
message (`relay.render.formats.google_chat`) answers the created message: its `name`
(`spaces/S/messages/M`, the result's `ts`) and its `thread.name` (`spaces/S/threads/T`, the
result's `channel_id`: where replies to it go).

Conversations (confirmed in the Google Chat API reference: `spaces.messages.create`, its
`MessageReplyOption`, and `Thread`):
- a thread is `thread.threadKey` in the body AND `messageReplyOption=
  REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD` on the URL; with the default option Google "ignores
  any thread ID or thread_key" and starts a new thread (the `threadKey` query parameter is
  deprecated). The key is a hash of the conversation's key (`Outgoing.thread`): stable, far
  under Google's 4,000 characters, and no event data in it; Google scopes it to the webhook
  that sets it. The first message of a key starts the thread, the others join it, even after
  relay forgot the thread.
- a reply or update with no conversation key (a repeat) goes to the thread of the message it
  answers, by that message's `thread.name`.
- a webhook cannot edit a message (that needs a Chat app or user credentials): an update is
  posted as a reply in the thread, with the new state. A reply that Slack would also broadcast
  to the channel stays in the thread (Google Chat has no such thing).

Answers: 2xx is sent; 400 (INVALID_ARGUMENT: a payload Google refuses, or the webhook's API key)
is permanent and never retried; 401 and 403 (a revoked token, Chat apps disabled for the
organisation) and 404 (the space or webhook is gone) are permanent; 429 (RESOURCE_EXHAUSTED:
Google documents no Retry-After, the worker's backoff decides unless one is sent) and 5xx are
retried. The bodies are Google's `{"error": {"code", "message", "status"}}`: a token Google
does not know is 403 PERMISSION_DENIED "The API is called without a valid token", a wrong key
400 INVALID_ARGUMENT with the reason API_KEY_INVALID (both as users reported them, e.g.
ericferon/glpi-webhook#30); the usage limits page asks for exponential backoff on 429. A
result's `detail` is Google's `status` string (`INVALID_ARGUMENT`), `http_<status>` or an
exception class: never the URL, whose `token` is a secret.

Pacing: Google allows 1 request per second per space (60 writes a minute per space on the usage
limits page), shared by all the space's webhooks, so
every destination of one space shares one pacing key (a digest of the space, from the URL's
path), at 1 a second with a burst of 1 unless the config says otherwise.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, TextIO

import httpx

from relay.config.destinations import GoogleChatDestination
from relay.delivery.console import ConsoleSender, Style
from relay.delivery.http import Answer, attempt, failed, secret_digest
from relay.delivery.senders import Sender
from relay.records import DeliveryResult, MessageRef, Outcome, Outgoing, Reason
from relay.render.formats.google_chat import payload

PACING = (1.0, 1.0)  # messages per second, burst
REPLY = {"messageReplyOption": "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"}
PERMANENT: Mapping[int, Reason] = {
    400: Reason.INVALID_PAYLOAD,
    401: Reason.AUTH,
    403: Reason.AUTH,
    404: Reason.CHANNEL,  # the space, or the webhook: not a message (NOT_FOUND would re-post)
    413: Reason.INVALID_PAYLOAD,
}
_STATUS = re.compile(r"^[A-Z][A-Z_]{1,63}$")
_THREAD_NAME = re.compile(r"^spaces/[^/\s]+/threads/[^/\s]+$")
_SPACE = re.compile(r"/v1/spaces/([^/?#\s]+)/messages")


def thread_key(conversation: str) -> str:
    """The threadKey of a conversation: a stable hash of relay's key for it."""
    return "relay-" + hashlib.sha256(conversation.encode()).hexdigest()


def space_of(url: str) -> str | None:
    """The space a webhook URL posts to (`AAAA...` from `/v1/spaces/AAAA.../messages`)."""
    found = _SPACE.search(url)
    return found.group(1) if found else None


def pace_key(destination: GoogleChatDestination, dry_run: bool) -> str:
    """One key per space (a digest: no part of a webhook URL in keys, logs or metrics)."""
    del dry_run  # a webhook carries its own credentials
    if destination.webhook_url is None:
        return "console"
    url = destination.webhook_url.get_secret_value()
    space = space_of(url)
    return "google_chat:" + secret_digest(space if space is not None else url)


def describe(destination: GoogleChatDestination, dry_run: bool) -> str:
    del dry_run
    return "google chat space webhook" + ("" if destination.webhook_url else " (no URL: console)")


def sender(
    name: str,
    destination: GoogleChatDestination,
    console: TextIO,
    http: httpx.AsyncClient | None,
    timeout: float,
    style: Style = "json",
) -> Sender:
    """The destination's sender; without a URL it prints what Google would be sent."""
    if destination.webhook_url is None:
        return ConsoleSender(console, name, chat="google_chat", format=payload, style=style)
    return GoogleChatSender(destination.webhook_url.get_secret_value(), http, timeout)


def warnings(destination: GoogleChatDestination) -> list[str]:
    """What `relay check` should say about a webhook URL (never the URL itself)."""
    if destination.webhook_url is None:
        return []
    url = httpx.URL(destination.webhook_url.get_secret_value())
    found = []
    if url.scheme == "http":
        found.append("webhook_url is plain http: its token travels in clear")
    if url.host != "chat.googleapis.com":
        found.append(
            "webhook_url's host is not chat.googleapis.com: fine for a proxy or a test server"
        )
    if space_of(str(url)) is None:
        found.append(
            "webhook_url's path is not /v1/spaces/SPACE/messages: relay cannot tell its space,"
            " so it paces this URL on its own (Google's quota is per space)"
        )
    if "token" not in url.params:
        found.append("webhook_url has no token=...: Google answers 403 without one")
    return found


class GoogleChatSender:
    """Posts through one Google Chat incoming webhook: one attempt per send."""

    def __init__(
        self, url: str, client: httpx.AsyncClient | None = None, timeout: float = 10.0
    ) -> None:
        self.url = url
        self.client = client
        self.timeout = timeout

    async def send(self, out: Outgoing) -> DeliveryResult:
        body: dict[str, Any] = dict(payload(out.message))
        thread = _thread(out)
        if thread is not None:
            body["thread"] = thread
        url = self.url
        if thread is not None:  # httpx's `params=` would replace the URL's key and token
            url = str(httpx.URL(url).copy_merge_params(REPLY))
        if self.client is not None:
            answered = await self._post(self.client, url, body)
        else:  # no shared client (tests, tools): one for this attempt
            async with httpx.AsyncClient() as client:
                answered = await self._post(client, url, body)
        if isinstance(answered, DeliveryResult):
            return answered
        if answered.ok:
            return _sent(answered)
        return classify(answered)

    async def _post(
        self, client: httpx.AsyncClient, url: str, body: Mapping[str, Any]
    ) -> Answer | DeliveryResult:
        return await attempt(client, "POST", url, json_body=body, timeout=self.timeout)


def _thread(out: Outgoing) -> dict[str, str] | None:
    """Where in the space the message goes: the conversation's thread by key, else the thread
    of the message it answers, else (None) a thread of its own."""
    if out.thread is not None:
        return {"threadKey": thread_key(out.thread)}
    for ref in (out.reply_to, out.update):
        name = _thread_name(ref)
        if name is not None:
            return {"name": name}
    return None


def _thread_name(ref: MessageRef | None) -> str | None:
    if ref is None or ref.channel_id is None:
        return None
    return ref.channel_id if _THREAD_NAME.match(ref.channel_id) else None


def _sent(answer: Answer) -> DeliveryResult:
    created = answer.json_object()
    name = created.get("name")
    thread = created.get("thread")
    thread_name = thread.get("name") if isinstance(thread, dict) else None
    return DeliveryResult(
        Outcome.SENT,
        Reason.OK,
        channel_id=thread_name if isinstance(thread_name, str) else None,
        ts=name if isinstance(name, str) and name else None,
    )


def classify(answer: Answer) -> DeliveryResult:
    """A Google answer that is not a success, as a `DeliveryResult`."""
    error = answer.json_object().get("error")
    error = error if isinstance(error, dict) else {}
    status = error.get("status")
    detail = status if isinstance(status, str) and _STATUS.match(status) else None
    result = failed(answer, permanent=PERMANENT, detail=detail)
    if answer.status == 400 and _reason(error) == "API_KEY_INVALID":
        # the webhook URL's key, not the message: the URL needs fixing
        return DeliveryResult(Outcome.PERMANENT, Reason.AUTH, detail=result.detail)
    return result


def _reason(error: Mapping[str, Any]) -> str | None:
    details = error.get("details")
    for item in details if isinstance(details, list) else []:
        if isinstance(item, dict) and isinstance(item.get("reason"), str):
            return str(item["reason"])
    return None
