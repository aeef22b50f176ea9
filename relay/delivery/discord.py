"""Discord: the sender that posts through a channel webhook and edits what it posted, and the
reading of every answer Discord gives into a `DeliveryResult`.

What Discord documents and this relies on (discord-api-docs: resources/webhook, topics/rate-limits,
topics/opcodes-and-status-codes):
- Execute Webhook with `?wait=true` answers the message it created (`id`, and `channel_id`: the
  thread's id when the message is in a thread); without it, a 204 even when the message was not
  saved. `with_components=true` lets a webhook no application owns send link buttons.
- A forum or media channel needs `thread_name` (a new post) or `thread_id`, else 400 code 220001.
  A webhook cannot start a thread in a text channel (220003), so there a reply is posted in the
  channel, flat. `broadcast` has no meaning in Discord: a reply stays in its thread.
- Edit Webhook Message: `PATCH .../messages/{id}`, `?thread_id=` when the message is in a thread;
  an edit without `allowed_mentions` is parsed with the default allowances, so every payload
  carries it (relay.render.formats.discord). A message someone deleted: 404 code 10008, read as
  NOT_FOUND, so that the worker forgets it and posts anew.
- 404 code 10015 (unknown webhook) and 401 code 50027 (invalid token): the webhook is gone, and
  Discord asks not to use it again (repeated 404s and every 401/403/429 count toward its ban of
  an IP at 10,000 invalid requests in 10 minutes). The sender remembers it and answers every
  later message with the same permanent failure without a request, until a reload builds it anew.
- 429: `retry_after` (float seconds) in the JSON body, `Retry-After` in whole seconds,
  `global`, `X-RateLimit-Scope`. Answers carry `X-RateLimit-Remaining` and
  `X-RateLimit-Reset-After`: Discord asks clients not to call an exhausted bucket before it
  resets, so after an answer that left none the sender answers `retry` (rate_limited, detail
  `bucket_exhausted`) without a request until the reset; the worker pauses the key meanwhile.
  A global 429 (`global: true`, `X-RateLimit-Global`) limits every request from this relay:
  every Discord sender of the same config answers `retry` (detail `global_rate_limit`) without
  a request until it has passed (`GlobalLimit`).
- 400 code 50035 (invalid form body) and any other 400: the payload is refused (permanent).

A result's `detail` is Discord's error code, `http_<status>` or an exception class: never the
URL, whose token is the secret.

Also what `relay.delivery.destinations` needs to know of a `type: discord` destination: its
pacing key (the webhook's id), its description and `relay check` warnings (never the URL),
whether its conversations get threads of their own (in a forum channel only), its sender, and
Discord's pace.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx

from relay.config import DiscordDestination
from relay.delivery.console import ConsoleSender
from relay.delivery.http import Answer, attempt, failed, retry_after, secret_digest
from relay.delivery.senders import Sender
from relay.records import DeliveryResult, MessageRef, Outcome, Outgoing, Reason
from relay.render.formats.discord import payload, thread_name

if TYPE_CHECKING:
    from relay.delivery.destinations import Clients

UNKNOWN_CHANNEL = 10003  # the thread a message was to go into is gone
UNKNOWN_MESSAGE = 10008
UNKNOWN_WEBHOOK = 10015
INVALID_TOKEN = 50027
# the destination's `forum`/`thread_id` does not match its channel
FORUM_CODES = frozenset({220001, 220002, 220003})
_WEBHOOK_ID = re.compile(r"/webhooks/([0-9]{5,25})/")
_SNOWFLAKE = re.compile(r"^[0-9]{5,25}$")


HOSTS = frozenset({"discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com"})
# 5 requests per 2 s per webhook and 30 messages a minute per channel (Discord's staff in
# discord-api-docs issue #367; its reference asks clients to read the headers, which the sender
# does): 24 a minute with a burst of 4 is never more than 28 in any minute
PACING = (0.4, 4.0)


def webhook_id(url: str) -> str | None:
    """The webhook's id from its URL's path (not a secret: nothing posts without the token)."""
    found = _WEBHOOK_ID.search(urlsplit(url).path + "/")
    return found.group(1) if found else None


def pace_key(d: DiscordDestination, dry_run: bool) -> str:
    """One key per webhook, or per channel where the config names it (`channel_id`): Discord
    limits each webhook, and the channel it posts in across its webhooks."""
    del dry_run  # a webhook carries its own credentials
    if d.webhook_url is None:
        return "console"
    if d.channel_id is not None:
        return f"discord:channel:{d.channel_id}"
    url = d.webhook_url.get_secret_value()
    return f"discord:{webhook_id(url) or secret_digest(url)}"


def url_thread(url: str) -> str | None:
    """The thread a webhook URL copied with `?thread_id=...` names, if it names one."""
    given = parse_qs(urlsplit(url).query).get("thread_id", [None])[-1]
    return given if given and _SNOWFLAKE.match(given) else None


def threads(d: DiscordDestination) -> bool:
    """Whether each conversation gets a thread of its own: only in a forum channel, where its
    first message starts a post. A text channel's webhook cannot start a thread (replies are
    posted flat), and `thread_id` (or a URL's `?thread_id=`) puts every message in one thread."""
    url = d.webhook_url.get_secret_value() if d.webhook_url is not None else ""
    return d.forum and d.thread_id is None and url_thread(url) is None


def describe(d: DiscordDestination, dry_run: bool) -> str:
    del dry_run
    where = " (forum)" if d.forum else " (thread)" if d.thread_id else ""
    return f"discord webhook{where}" + ("" if d.webhook_url else " (no URL: console)")


def warnings(d: DiscordDestination) -> list[str]:
    """What `relay check` should say about a webhook URL (without showing it)."""
    if d.webhook_url is None:
        return []
    url = d.webhook_url.get_secret_value()
    parts = urlsplit(url)
    found = []
    if parts.scheme == "http":
        found.append("webhook_url is plain http: its token travels unencrypted")
    if (parts.hostname or "").lower() not in HOSTS:
        found.append("webhook_url's host is not Discord's: fine for a proxy")
    if webhook_id(url) is None:
        found.append("webhook_url does not look like a webhook's (.../api/webhooks/ID/TOKEN)")
    return found


class GlobalLimit:
    """Discord's global rate limit, shared by the webhook senders of one process (`Clients`; a
    reload's senders get the same one): a 429 that says `global` holds every one of them until it
    has passed, without a request, since each request meanwhile would be refused too and count
    toward the IP ban. `until` is a time of the senders' clock (time.monotonic)."""

    def __init__(self) -> None:
        self.until = 0.0


def sender(name: str, d: DiscordDestination, clients: Clients) -> Sender:
    """The destination's sender; without a URL, the console prints Discord's payload."""
    if d.webhook_url is None:
        return ConsoleSender(
            clients.console, name, chat="discord", format=payload, style=clients.console_style
        )
    return DiscordWebhookSender(
        clients.http or httpx.AsyncClient(),
        d.webhook_url.get_secret_value(),
        thread_id=d.thread_id,
        forum=d.forum,
        timeout=clients.timeout,
        global_limit=clients.discord_limit,
    )


class DiscordWebhookSender:
    """Posts through one Discord webhook; replies into a forum post's thread, edits in place.

    `thread_id` posts every message into that existing thread; `forum` starts a forum post
    (named by the message's title) with every message that does not reply to one."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        *,
        thread_id: str | None = None,
        forum: bool = False,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        global_limit: GlobalLimit | None = None,
    ) -> None:
        parts = urlsplit(url)
        # a URL copied with `?thread_id=...` says which thread; the rest relay sets itself
        self.url = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self.client = client
        self.thread_id = thread_id or url_thread(url)
        self.forum = forum and self.thread_id is None
        self.timeout = timeout
        self.clock = clock
        self._gone: DeliveryResult | None = None
        self._blocked_until = 0.0
        self.global_limit = global_limit or GlobalLimit()

    async def send(self, out: Outgoing) -> DeliveryResult:
        if self._gone is not None:
            return self._gone
        now = self.clock()
        wait = max(self._blocked_until, self.global_limit.until) - now
        if wait > 0:
            shared = self.global_limit.until > self._blocked_until
            return DeliveryResult(
                Outcome.RETRY,
                Reason.RATE_LIMITED,
                retry_after=wait,
                detail="global_rate_limit" if shared else "bucket_exhausted",
            )
        body: dict[str, Any] = dict(payload(out.message))
        params = {"with_components": "true"}
        if out.update is not None:
            if not _SNOWFLAKE.match(out.update.ts):  # not a Discord message (dry-run printed it)
                return DeliveryResult(Outcome.PERMANENT, Reason.NOT_FOUND, detail="not_discord")
            method, url = "PATCH", f"{self.url}/messages/{out.update.ts}"
            thread = self._thread_of(out.update)
        else:
            method, url = "POST", self.url
            params["wait"] = "true"
            thread = self._thread_of(out.reply_to) if out.reply_to is not None else self.thread_id
            if thread is None and self.forum:
                body["thread_name"] = thread_name(out.message)
        if thread is not None:
            params["thread_id"] = thread
        answer = await attempt(
            self.client, method, url, json_body=body, params=params, timeout=self.timeout
        )
        if isinstance(answer, DeliveryResult):
            return answer
        self._note_bucket(answer)
        if answer.ok:
            return _sent(answer, out)
        return self._failed(answer, editing=out.update is not None)

    def _thread_of(self, ref: MessageRef) -> str | None:
        """The thread a message of this destination is in: the configured one, a forum post's
        (the message's channel is its thread), none in a text channel."""
        if self.thread_id is not None:
            return self.thread_id
        if self.forum and ref.channel_id is not None and _SNOWFLAKE.match(ref.channel_id):
            return ref.channel_id
        return None

    def _note_bucket(self, answer: Answer) -> None:
        if answer.headers.get("x-ratelimit-remaining", "").strip() != "0":
            return
        reset = _seconds(answer.headers.get("x-ratelimit-reset-after"))
        if reset is not None:
            self._blocked_until = max(self._blocked_until, self.clock() + reset)

    def _failed(self, answer: Answer, *, editing: bool) -> DeliveryResult:
        found = answer.json_object()
        code = found.get("code")
        # Discord's JSON error code; its 5xx bodies say `"code": 0`, which tells nothing
        code = code if isinstance(code, int) and not isinstance(code, bool) and code else None
        detail = str(code) if code is not None else f"http_{answer.status}"
        status = answer.status
        if status == 429:
            wait = _seconds(found.get("retry_after"))
            if wait is None:
                wait = retry_after(answer)
            scope = answer.headers.get("x-ratelimit-scope")
            if found.get("global") is True or answer.headers.get("x-ratelimit-global") == "true":
                scope = "global"
            if wait is not None:
                until = self.clock() + wait
                if scope == "global":  # every webhook of this relay waits
                    self.global_limit.until = max(self.global_limit.until, until)
                else:
                    self._blocked_until = max(self._blocked_until, until)
            shown = f"http_429:{scope}" if scope in ("global", "shared", "user") else "http_429"
            return failed(answer, permanent={}, detail=shown, wait=wait)
        if code in (UNKNOWN_WEBHOOK, INVALID_TOKEN) or status == 401:
            reason = Reason.CHANNEL if code == UNKNOWN_WEBHOOK else Reason.AUTH
            self._gone = DeliveryResult(Outcome.PERMANENT, reason, detail=detail)
            return self._gone
        if code in (UNKNOWN_MESSAGE, UNKNOWN_CHANNEL):
            return DeliveryResult(Outcome.PERMANENT, Reason.NOT_FOUND, detail=detail)
        if code in FORUM_CODES:
            return DeliveryResult(Outcome.PERMANENT, Reason.CHANNEL, detail=detail)
        permanent: Mapping[int, Reason] = {
            400: Reason.INVALID_PAYLOAD,
            403: Reason.AUTH,
            404: Reason.NOT_FOUND if editing else Reason.CHANNEL,
        }
        return failed(answer, permanent=permanent, detail=detail)


def _sent(answer: Answer, out: Outgoing) -> DeliveryResult:
    """A success: the message's id and channel when Discord answered the message (a 204 from
    something that ignored `wait` carries none: nothing to reply under or edit later)."""
    found = answer.json_object()
    message_id, channel_id = found.get("id"), found.get("channel_id")
    ts = str(message_id) if isinstance(message_id, str | int) else None
    if ts is None and out.update is not None:
        ts = out.update.ts
    channel = str(channel_id) if isinstance(channel_id, str | int) else None
    return DeliveryResult(Outcome.SENT, Reason.OK, channel_id=channel, ts=ts)


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
