"""A fake Discord for tests, served over real HTTP: channel webhooks (Execute Webhook and Edit
Webhook Message), answering with Discord's statuses, error bodies and rate-limit headers (see
../shared/CHATS.md and discord-api-docs: resources/webhook, resources/message, topics/rate-limits,
topics/opcodes-and-status-codes).

It owns: the webhooks (each in a text or a forum channel) and the threads of their channels, the
payload checks Discord makes (every documented limit answered as a 400 with code 50035 and the
path of the fault in `errors`), forum and thread semantics, rate limits per webhook and per
channel with the `X-RateLimit-*` headers, scripted failures per webhook, and a thread-safe record
of every request (with whether it carried `allowed_mentions`) and of every message as posted and
as it reads now.

What it answers, as Discord does:
- `POST /api/webhooks/{id}/{token}[?wait=true][&thread_id=][&with_components=true]`: with
  `wait=true` 200 and the message (`id`, `channel_id`: the thread's id in a thread, `webhook_id`,
  `content`, `embeds`, `components`); without, 204 and no body. An unknown webhook id 404
  `{"code": 10015, "message": "Unknown Webhook"}`; a wrong token 401 code 50027.
- A forum webhook needs `thread_name` (a new post whose thread id is its first message's id) or
  `thread_id`: 400 code 220001 with neither, 220002 with both; `thread_name` in a text channel is
  220003. A `thread_id` that is no thread of the webhook's channel: 404 code 10003.
- `components` are ignored unless `with_components=true`; a webhook no application owns may send
  link buttons (style 5) only.
- `PATCH .../messages/{message_id}[?thread_id=]`: the message must be one this webhook posted,
  not deleted, and, when it is in a thread, named with that thread's id: otherwise 404 code
  10008 (Unknown Message). Each field given replaces the message's; those left out are kept.
- Rate limits (`rate_limits=True`): 5 requests per 2 s per webhook, 30 messages per 60 s per
  channel; every answer carries `X-RateLimit-Limit/Remaining/Reset/Reset-After/Bucket`; a 429 has
  `Retry-After` (whole seconds, rounded up) and `{"message", "retry_after": <float>, "global"}`
  with `X-RateLimit-Scope`.

Choices where Discord is vague: lengths are counted in UTF-16 units (the stricter of the two
readings of "characters"); an interactive component from this (non-application) webhook is a
400 50035 rather than silently dropped; only accepted requests count toward the rate limits.

Scripted steps (`FakeDiscord.script(hook, steps)`), consumed one per request to that webhook:
    "ratelimited[:S]"          429, retry_after S seconds (default 1; a float is fine)
    "ratelimited_global[:S]"   the same with `global: true` and scope `global`
    "server_error"             500 with Discord's JSON body ("http:NNN" for any other status)
    "unknown_webhook"          404 code 10015; "invalid_token" 401 code 50027;
    "unknown_message"          404 code 10008; "missing_permissions" 403 code 50013
    "timeout"                  no answer until the client gives up; nothing is posted
    "drop_connection"          the socket is closed without an answer; nothing is posted
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fakeserver import FakeServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

JSON_TYPE = "application/json"


@dataclass(frozen=True)
class Hook:
    """A webhook: its id and token, its channel, and whether that channel is a forum."""

    id: str
    token: str
    channel: str
    forum: bool = False


DEFAULT_HOOKS: Mapping[str, Hook] = {
    "alerts": Hook("1100000000000000001", "tok-alerts", "1200000000000000001"),
    "events": Hook("1100000000000000002", "tok-events", "1200000000000000002"),
    "forum": Hook("1100000000000000003", "tok-forum", "1200000000000000003", forum=True),
}

CONTENT_MAX = 2000
EMBEDS_MAX = 10
EMBED_TOTAL_MAX = 6000
LIMITS = {"title": 256, "description": 4096, "footer": 2048, "author": 256}
FIELDS_MAX, FIELD_NAME_MAX, FIELD_VALUE_MAX = 25, 256, 1024
ROWS_MAX, BUTTONS_MAX, LABEL_MAX, BUTTON_URL_MAX = 5, 5, 80, 512
THREAD_NAME_MAX = 100
WEBHOOK_LIMIT = (5, 2.0)  # requests per seconds, per webhook
CHANNEL_LIMIT = (30, 60.0)  # messages per seconds, per channel
_STEP = re.compile(
    r"^(?:ratelimited(?:_global)?(?::\d+(?:\.\d+)?)?|server_error|http:[1-5]\d\d|unknown_webhook"
    r"|invalid_token|unknown_message|missing_permissions|timeout|drop_connection)$"
)
_SNOWFLAKE = re.compile(r"^[0-9]{5,25}$")
_ERRORS = {
    "unknown_webhook": (404, 10015, "Unknown Webhook"),
    "invalid_token": (401, 50027, "Invalid Webhook Token"),
    "unknown_message": (404, 10008, "Unknown Message"),
    "missing_permissions": (403, 50013, "Missing Permissions"),
}


def size(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


@dataclass(frozen=True)
class Message:
    """A message the fake accepted, as it was first posted."""

    id: str
    hook: str
    channel_id: str  # where it landed: the thread's id in a thread, else the channel's
    thread_id: str | None  # the thread it is in, if any
    started_thread: bool  # a new forum post
    thread_name: str | None
    content: str
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]]
    allowed_mentions: dict[str, Any] | None
    received: float


@dataclass(frozen=True)
class Edit:
    """An accepted Edit Webhook Message."""

    id: str
    hook: str
    body: dict[str, Any]
    received: float


@dataclass(frozen=True)
class RequestRecord:
    """One request and how the fake answered it (status None: no answer at all)."""

    method: str
    hook: str | None
    query: dict[str, str]
    status: int | None
    code: int | None
    received: float
    body: dict[str, Any] | None
    allowed_mentions_sent: bool
    scripted: str | None = None
    errors: dict[str, Any] = field(default_factory=dict)


class _Refused(Exception):
    def __init__(self, status: int, code: int, message: str, errors: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            out["errors"] = self.errors
        return out


def answer(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status_code=status, media_type=JSON_TYPE, headers=dict(headers or {})
    )


# ---------------------------------------------------------------- payload checks


class FormChecker:
    """Discord's checks of a message body; `errors` is the nested `errors` of a 50035."""

    def __init__(self) -> None:
        self.errors: dict[str, Any] = {}

    def fault(self, path: Sequence[str | int], code: str, message: str) -> None:
        node = self.errors
        for part in path:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def text(self, value: Any, path: Sequence[str | int], maximum: int, required: bool) -> int:
        if value is None:
            if required:
                self.fault(path, "BASE_TYPE_REQUIRED", "This field is required")
            return 0
        if not isinstance(value, str):
            self.fault(path, "BASE_TYPE_STRING", "Must be a string.")
            return 0
        if required and not value:
            self.fault(path, "BASE_TYPE_REQUIRED", "This field is required")
        if size(value) > maximum:
            self.fault(path, "BASE_TYPE_MAX_LENGTH", f"Must be {maximum} or fewer in length.")
        return size(value)

    def message(self, body: Mapping[str, Any], *, components: bool) -> None:
        self.text(body.get("content"), ["content"], CONTENT_MAX, False)
        embeds = body.get("embeds")
        if embeds is not None:
            self.embeds(embeds)
        if components and body.get("components") is not None:
            self.components(body["components"])
        if body.get("allowed_mentions") is not None:
            self.allowed(body["allowed_mentions"])
        if "thread_name" in body:
            self.text(body["thread_name"], ["thread_name"], THREAD_NAME_MAX, True)

    def array(self, value: Any, name: str, maximum: int) -> bool:
        """Whether `value` is a list (a fault if not, and one if it has over `maximum` items)."""
        if not isinstance(value, list):
            self.fault([name], "BASE_TYPE_ARRAY", "Must be an array.")
            return False
        if len(value) > maximum:
            self.fault([name], "BASE_TYPE_MAX_LENGTH", f"Must be {maximum} or fewer in length.")
        return True

    def embeds(self, embeds: Any) -> None:
        if not self.array(embeds, "embeds", EMBEDS_MAX):
            return
        total = 0
        for i, embed in enumerate(embeds):
            total += self.embed(embed, ["embeds", i])
        if total > EMBED_TOTAL_MAX:
            self.fault(
                ["embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"
            )

    def embed(self, embed: Any, path: list[str | int]) -> int:
        if not isinstance(embed, dict):
            self.fault(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
            return 0
        total = self.text(embed.get("title"), [*path, "title"], LIMITS["title"], False)
        total += self.text(embed.get("description"), [*path, "description"], 4096, False)
        for part, key in (("footer", "text"), ("author", "name")):
            if embed.get(part) is not None:
                node = embed[part]
                value = node.get(key) if isinstance(node, dict) else None
                total += self.text(value, [*path, part, key], LIMITS[part], True)
        color = embed.get("color")
        if color is not None and (not isinstance(color, int) or not 0 <= color <= 0xFFFFFF):
            self.fault([*path, "color"], "NUMBER_TYPE_MAX", "int value should be <= 16777215.")
        stamp = embed.get("timestamp")
        if stamp is not None:
            try:
                datetime.fromisoformat(str(stamp))
            except ValueError:
                self.fault([*path, "timestamp"], "DATE_TYPE_PARSE", "Could not parse date.")
        fields = embed.get("fields")
        if fields is not None:
            if not isinstance(fields, list):
                self.fault([*path, "fields"], "BASE_TYPE_ARRAY", "Must be an array.")
                return total
            if len(fields) > FIELDS_MAX:
                self.fault(
                    [*path, "fields"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
                )
            for j, item in enumerate(fields):
                where = [*path, "fields", j]
                item = item if isinstance(item, dict) else {}
                total += self.text(item.get("name"), [*where, "name"], FIELD_NAME_MAX, True)
                total += self.text(item.get("value"), [*where, "value"], FIELD_VALUE_MAX, True)
        return total

    def components(self, rows: Any) -> None:
        if not self.array(rows, "components", ROWS_MAX):
            return
        for i, row in enumerate(rows):
            inner = row.get("components") if isinstance(row, dict) else None
            if not isinstance(row, dict) or row.get("type") != 1 or not isinstance(inner, list):
                self.fault(
                    ["components", i],
                    "UNION_TYPE_CHOICES",
                    'Value of field "type" must be one of (1,).',
                )
                continue
            if not 1 <= len(inner) <= BUTTONS_MAX:
                self.fault(
                    ["components", i, "components"],
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 5 in length.",
                )
            for j, button in enumerate(inner):
                self.button(button, ["components", i, "components", j])

    def button(self, button: Any, path: list[str | int]) -> None:
        if not isinstance(button, dict) or button.get("type") != 2:
            self.fault(path, "UNION_TYPE_CHOICES", 'Value of field "type" must be one of (2,).')
            return
        if button.get("style") != 5 or "custom_id" in button:
            # a webhook no application owns may send non-interactive components only
            self.fault(path, "COMPONENT_INVALID", "Interactive components are not allowed.")
            return
        self.text(button.get("label"), [*path, "label"], LABEL_MAX, True)
        url = button.get("url")
        self.text(url, [*path, "url"], BUTTON_URL_MAX, True)
        if isinstance(url, str) and not re.match(r"^(https?|discord)://\S+$", url):
            self.fault([*path, "url"], "URL_TYPE_INVALID_URL", "Not a well formed URL.")

    def allowed(self, allowed: Any) -> None:
        if not isinstance(allowed, dict):
            self.fault(
                ["allowed_mentions"],
                "DICT_TYPE_CONVERT",
                "Only dictionaries may be used in a DictType",
            )
            return
        parse = allowed.get("parse", [])
        if not isinstance(parse, list) or not set(parse) <= {"users", "roles", "everyone"}:
            self.fault(
                ["allowed_mentions", "parse"],
                "ENUM_TYPE_COERCE",
                "Value must be one of {'users', 'roles', 'everyone'}.",
            )
            parse = []
        for kind in ("users", "roles"):
            listed = allowed.get(kind)
            if listed is None:
                continue
            if not isinstance(listed, list) or len(listed) > 100:
                self.fault(
                    ["allowed_mentions", kind],
                    "BASE_TYPE_MAX_LENGTH",
                    "Must be 100 or fewer in length.",
                )
            elif not all(isinstance(x, str) and _SNOWFLAKE.match(x) for x in listed):
                self.fault(
                    ["allowed_mentions", kind], "NUMBER_TYPE_COERCE", "Value is not snowflake."
                )
            if kind in parse and listed:
                self.fault(
                    ["allowed_mentions"],
                    "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
                )


def check_payload(body: Mapping[str, Any], *, components: bool = True) -> dict[str, Any]:
    """The `errors` Discord answers with code 50035 for a message body ({} when none)."""
    checker = FormChecker()
    checker.message(body, components=components)
    return checker.errors


class FakeDiscord(FakeServer[RequestRecord]):
    """The fake Discord server. Use as a context manager or call start()/stop()."""

    STEP = _STEP

    def __init__(
        self,
        *,
        hooks: Mapping[str, Hook] = DEFAULT_HOOKS,
        rate_limits: bool = True,
        webhook_limit: tuple[int, float] = WEBHOOK_LIMIT,
        channel_limit: tuple[int, float] = CHANNEL_LIMIT,
        hang_seconds: float = 35.0,
    ) -> None:
        super().__init__(hang_seconds=hang_seconds)
        self.hooks = dict(hooks)
        self.rate_limits = rate_limits
        # Discord's own by default; a test under load may widen the window
        self.webhook_limit = webhook_limit
        self.channel_limit = channel_limit
        self._by_id = {hook.id: name for name, hook in self.hooks.items()}
        self._next_id = 1_300_000_000_000_000_000
        self._threads: dict[str, str] = {}  # thread id -> its channel
        self._messages: list[Message] = []
        self._edits: list[Edit] = []
        self._current: dict[str, dict[str, Any]] = {}
        self._deleted: set[str] = set()
        routes = []
        for prefix in ("/api", "/api/v{version:int}"):
            routes += [
                Route(prefix + "/webhooks/{id}/{token}", self._execute, methods=["POST"]),
                Route(
                    prefix + "/webhooks/{id}/{token}/messages/{message}",
                    self._edit,
                    methods=["PATCH"],
                ),
            ]
        routes.append(Route("/_fake/health", self._health, methods=["GET"]))
        self.app = Starlette(routes=routes)

    # ---------------------------------------------------------------- addresses and controls

    def url(self, hook: str) -> str:
        """The webhook URL of a hook, as Discord shows it (`…/api/webhooks/ID/TOKEN`)."""
        h = self.hooks[hook]
        return f"http://127.0.0.1:{self.port}/api/webhooks/{h.id}/{h.token}"

    def _forget(self) -> None:
        self._messages.clear()
        self._edits.clear()
        self._current.clear()
        self._threads.clear()
        self._deleted.clear()

    def add_thread(self, hook: str) -> str:
        """A thread someone started in the hook's channel; returns its id."""
        with self._lock:
            thread = self._snowflake()
            self._threads[thread] = self.hooks[hook].channel
            return thread

    def delete_message(self, message_id: str) -> None:
        """Someone deleted the message (an edit of it: 404 Unknown Message)."""
        with self._lock:
            self._deleted.add(message_id)

    @property
    def messages(self) -> list[Message]:
        return self._snapshot(self._messages)

    @property
    def edits(self) -> list[Edit]:
        return self._snapshot(self._edits)

    def messages_of(self, hook: str) -> list[Message]:
        return [m for m in self.messages if m.hook == hook]

    def current(self, message_id: str) -> dict[str, Any]:
        """The message as it reads now (after edits): `content`, `embeds`, `components`, ..."""
        with self._lock:
            return json.loads(json.dumps(self._current[message_id]))

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[Message]:
        return self._wait_for(lambda: self.messages, count, timeout)

    # ---------------------------------------------------------------- internals

    def _snowflake(self) -> str:
        self._next_id += 4096
        return str(self._next_id)

    def _record(
        self,
        request: Request,
        name: str | None,
        status: int | None,
        code: int | None,
        received: float,
        body: Any,
        scripted: str | None = None,
        errors: Any = None,
    ) -> None:
        record = RequestRecord(
            method=request.method,
            hook=name,
            query=dict(request.query_params),
            status=status,
            code=code,
            received=received,
            body=body if isinstance(body, dict) else None,
            allowed_mentions_sent=isinstance(body, dict) and "allowed_mentions" in body,
            scripted=scripted,
            errors=errors or {},
        )
        self._keep(record)

    def _limit_headers(self, hook: Hook, now: float) -> dict[str, str]:
        limit, window = self.webhook_limit
        recent = self._recent[f"hook:{hook.id}"]
        while recent and now - recent[0] >= window:
            recent.popleft()
        reset_after = window - (now - recent[0]) if recent else window
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - len(recent))),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": f"fake{hook.id[-6:]}",
        }

    def _rate_limited(self, hook: Hook, channel: str, now: float, posting: bool) -> Response | None:
        """A 429 when this request would pass the webhook's or the channel's limit; else None
        and the request counted."""
        if not self.rate_limits:
            return None
        with self._lock:
            buckets = [(f"hook:{hook.id}", self.webhook_limit, "user")]
            if posting:
                buckets.append((f"channel:{channel}", self.channel_limit, "shared"))
            for key, (limit, window), scope in buckets:
                recent = self._recent[key]
                while recent and now - recent[0] >= window:
                    recent.popleft()
                if len(recent) >= limit:
                    wait = window - (now - recent[0])
                    headers = {**self._limit_headers(hook, now), "X-RateLimit-Scope": scope}
                    headers["Retry-After"] = str(math.ceil(wait))
                    body = {
                        "message": "You are being rate limited.",
                        "retry_after": round(wait, 3),
                        "global": False,
                    }
                    return answer(body, 429, headers)
            for key, _limit, _scope in buckets:
                self._recent[key].append(now)
        return None

    async def _play(self, step: str, request: Request) -> Response:
        if step.startswith("ratelimited"):
            wait = float(step.partition(":")[2] or "1")
            glob = step.startswith("ratelimited_global")
            headers = {
                "Retry-After": str(math.ceil(wait)),
                "X-RateLimit-Scope": "global" if glob else "user",
            }
            if glob:
                headers["X-RateLimit-Global"] = "true"
            body = {"message": "You are being rate limited.", "retry_after": wait, "global": glob}
            return answer(body, 429, headers)
        if step == "server_error" or step.startswith("http:"):
            status = 500 if step == "server_error" else int(step[5:])
            return answer({"message": f"{status}: Internal Server Error", "code": 0}, status)
        if step in _ERRORS:
            status, code, message = _ERRORS[step]
            return answer({"message": message, "code": code}, status)
        if step == "timeout":
            return await self._hang(request)
        return await self._drop(request)

    async def _open(self, request: Request) -> tuple[str, Hook, Any, str | None] | Response:
        """The hook a request names and its body, or the answer that refuses it."""
        received = time.monotonic()
        name = self._by_id.get(request.path_params["id"])
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if name is None:
            self._record(request, None, 404, 10015, received, body)
            return answer({"message": "Unknown Webhook", "code": 10015}, 404)
        hook = self.hooks[name]
        if request.path_params["token"] != hook.token:
            self._record(request, name, 401, 50027, received, body)
            return answer({"message": "Invalid Webhook Token", "code": 50027}, 401)
        step = self._next_step(name)
        if step is not None:
            response = await self._play(step, request)
            status = None if step in ("timeout", "drop_connection") else response.status_code
            code = json.loads(response.body).get("code") if status and response.body else None
            self._record(request, name, status, code, received, body, step)
            return response
        if not isinstance(body, dict):
            self._record(request, name, 400, 50109, received, body)
            return answer(
                {"message": "The request body contains invalid JSON.", "code": 50109}, 400
            )
        return name, hook, body, None

    async def _execute(self, request: Request) -> Response:
        received = time.monotonic()
        opened = await self._open(request)
        if isinstance(opened, Response):
            return opened
        name, hook, body, _ = opened
        query = request.query_params
        components = query.get("with_components") == "true"
        thread = query.get("thread_id")
        try:
            errors = check_payload(body, components=components)
            if errors:
                raise _Refused(400, 50035, "Invalid Form Body", errors)
            if thread is not None:
                with self._lock:
                    known = self._threads.get(thread) == hook.channel
                if not known:
                    raise _Refused(404, 10003, "Unknown Channel")
            if hook.forum and thread is None and not body.get("thread_name"):
                raise _Refused(
                    400,
                    220001,
                    "Webhooks posted to forum channels must have a thread_name or thread_id",
                )
            if hook.forum and thread is not None and body.get("thread_name"):
                raise _Refused(
                    400,
                    220002,
                    "Webhooks posted to forum channels cannot have both a thread_name and"
                    " thread_id",
                )
            if not hook.forum and body.get("thread_name"):
                raise _Refused(400, 220003, "Webhooks can only create threads in forum channels")
            shown = [c for c in body.get("components") or [] if components]
            if not body.get("content") and not body.get("embeds") and not shown:
                raise _Refused(400, 50006, "Cannot send an empty message")
        except _Refused as refused:
            self._record(
                request, name, refused.status, refused.code, received, body, errors=refused.errors
            )
            return answer(refused.body(), refused.status, self._limit_headers(hook, received))
        limited = self._rate_limited(hook, thread or hook.channel, received, posting=True)
        if limited is not None:
            self._record(request, name, 429, None, received, body)
            return limited
        with self._lock:
            message_id = self._snowflake()
            started = hook.forum and thread is None
            if started:
                self._threads[message_id] = hook.channel  # a forum post's thread has its id
            landed = message_id if started else thread or hook.channel
            in_thread = landed if landed != hook.channel else None
            message = Message(
                id=message_id, hook=name, channel_id=landed, thread_id=in_thread,
                started_thread=started, thread_name=body.get("thread_name"),
                content=body.get("content") or "", embeds=list(body.get("embeds") or []),
                components=shown, allowed_mentions=body.get("allowed_mentions"), received=received,
            )  # fmt: skip
            self._messages.append(message)
            self._current[message_id] = {
                "id": message_id, "type": 0, "channel_id": landed, "webhook_id": hook.id,
                "content": message.content, "embeds": message.embeds, "components": shown,
                "edited_timestamp": None,
            }  # fmt: skip
            headers = self._limit_headers(hook, received)
            reply = json.loads(json.dumps(self._current[message_id]))
        if query.get("wait") != "true":
            self._record(request, name, 204, None, received, body)
            return Response(status_code=204, headers=headers)
        self._record(request, name, 200, None, received, body)
        return answer(reply, 200, headers)

    async def _edit(self, request: Request) -> Response:
        received = time.monotonic()
        opened = await self._open(request)
        if isinstance(opened, Response):
            return opened
        name, hook, body, _ = opened
        message_id = request.path_params["message"]
        query = request.query_params
        components = query.get("with_components") == "true"
        with self._lock:
            existing = self._current.get(message_id)
            deleted = message_id in self._deleted
        try:
            errors = check_payload(body, components=components)
            if errors:
                raise _Refused(400, 50035, "Invalid Form Body", errors)
            thread = query.get("thread_id")
            if existing is None or existing["webhook_id"] != hook.id or deleted:
                raise _Refused(404, 10008, "Unknown Message")
            # a message in a thread is found only by naming its thread, and only there
            landed = existing["channel_id"]
            if (thread or hook.channel) != landed:
                raise _Refused(404, 10008, "Unknown Message")
        except _Refused as refused:
            self._record(
                request, name, refused.status, refused.code, received, body, errors=refused.errors
            )
            return answer(refused.body(), refused.status, self._limit_headers(hook, received))
        limited = self._rate_limited(hook, hook.channel, received, posting=False)
        if limited is not None:
            self._record(request, name, 429, None, received, body)
            return limited
        with self._lock:
            current = self._current[message_id]
            for key in ("content", "embeds"):
                if key in body:
                    current[key] = (
                        body[key] if body[key] is not None else ([] if key == "embeds" else "")
                    )
            if components and "components" in body:
                current["components"] = body["components"] or []
            current["edited_timestamp"] = datetime.now().isoformat()
            self._edits.append(Edit(message_id, name, body, received))
            reply = json.loads(json.dumps(current))
            headers = self._limit_headers(hook, received)
        self._record(request, name, 200, None, received, body)
        return answer(reply, 200, headers)

    async def _health(self, request: Request) -> Response:
        del request
        return Response("ok", media_type="text/plain")
