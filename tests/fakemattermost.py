"""A fake Mattermost for tests, served over real HTTP: incoming webhooks (`POST /hooks/{key}`)
and the REST API a bot posts with (`POST /api/v4/posts`, `PUT /api/v4/posts/{id}/patch`),
answering with Mattermost's statuses, bodies and content types (read in the server's source:
see relay/delivery/mattermost.py).

It owns: hooks with known keys, a bot token, channels (those the bot is in, an archived one),
users whose @mentions resolve, posts with `root_id` threads, patches and deletions (as a person
deleting a post in the client), the 16,383-character limit, an optional rate limit, scripted
failures per hook or channel, and a thread-safe record of every request and every accepted post,
with the @mentions the server would notify for it (`Post.mentions`, by Mattermost's own rules:
see `mentions_in`), so that tests can prove that none came from event text.

What it does as Mattermost does:
- A webhook's texts go through Slack compatibility first (`<!channel>`, `<!here>`, `<!all>` ->
  `@channel`..., `<@USERID>` -> `@username`, `<url|label>` -> `[label](url)`), and a text over
  the limit is split into several posts (relay must never cause that: see `Post.split`).
  Success is `200 ok` (text/plain), no post id.
- The API answers 201 with the post (`id`, `channel_id`, `root_id`, `message`, `props`, ...);
  a patch 200 with the post; a post that is gone (deleted, unknown, not the bot's) is 403
  `api.context.permissions.app_error` on a patch, as patchPost masks "not found".
- Errors are `{"id", "message", "detailed_error", "request_id", "status_code"}`; a rate-limited
  request is 429 `limit exceeded` (text/plain) with `X-RateLimit-Limit`, `-Remaining`, `-Reset`
  and `Retry-After` (every answer carries the `X-RateLimit-*` headers while the limit is on).

Scripted steps (`script(target, steps)`; target = a hook key or a channel id), consumed one per
request for that target, in order:
    "ratelimited[:N|none]"  429 with Retry-After N (default 1); "none" omits Retry-After
    "server_error"          500 with an HTML body ("http:NNN" for any other status)
    "error:NNN:<id>"        status NNN with Mattermost's error body of that id
    "timeout"               no answer until the client gives up; nothing is posted
    "timeout_after_post"    the message IS posted, then no answer
    "drop_connection"       the socket is closed without a response; nothing is posted
"""

from __future__ import annotations

import contextlib
import html
import json
import math
import re
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from fakeserver import FakeServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

TOKEN = "mm-bot-token-for-tests"
BOT_USER_ID = "bot0000000000000000000000a"
ALERTS = "alerts00000000000000000000"  # channel ids: 26 lower-case letters and digits
EVENTS = "events00000000000000000000"
OUTSIDE = "outside0000000000000000000"  # exists, but the bot is not a member
ARCHIVED = "archived000000000000000000"
DEFAULT_CHANNELS: Mapping[str, str] = {
    ALERTS: "browser-alerts",
    EVENTS: "browser-events",
    OUTSIDE: "private-ops",
    ARCHIVED: "old-alerts",
}
DEFAULT_HOOKS: Mapping[str, str] = {"alertshookkey0000000000000": ALERTS}
USERS: Mapping[str, str] = {  # id -> username: the people whose @mentions notify
    "alice000000000000000000000": "alice",
    "bob00000000000000000000000": "bob",
}
MAX_POST_SIZE = 16_383
PROPS_MAX = 800_000
PROPS_MAX_USER = 400_000
JSON_TYPE = "application/json"

_STEP = re.compile(
    r"^(ratelimited(:(\d+|none))?|server_error|http:[1-5]\d\d|error:[1-5]\d\d:[a-z0-9_.]+|"
    r"timeout|timeout_after_post|drop_connection)$"
)
_ID = re.compile(r"^[a-z0-9]{26}$")
_LINK = re.compile(r"<([^\n<|>]+)\|([^|\n>]+)>")  # the server's linkWithTextRegex
_ENTITY = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[^\n]*\n.*?(?:^ {0,3}\1[`~]*[ \t]*$|\Z)", re.M | re.S)
_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
SYSTEM_MENTIONS = ("@here", "@channel", "@all")


# ---------------------------------------------------------------- Mattermost's reading of a text


def _scan(text: str, hidden: str | None) -> str:
    """What Mattermost's Markdown parser hands on as text: code left out (as a word break),
    backslash escapes and entities resolved; with `hidden`, every escaped or entity character
    is that placeholder instead (it cannot start or continue any syntax)."""
    text = _FENCE.sub(" ", text)
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in _PUNCT:
            out.append(hidden or text[i + 1])
            i += 2
            continue
        if char == "`":
            run = len(text) - i - len(text[i:].lstrip("`"))
            close = re.compile(rf"(?<!`)`{{{run}}}(?!`)").search(text, i + run)
            if close is not None:
                out.append(" ")
                i = close.end()
                continue
            out.append("`" * run)
            i += run
            continue
        entity = _ENTITY.match(text, i) if char == "&" else None
        if entity is not None and html.unescape(entity.group()) != entity.group():
            out.append(hidden or html.unescape(entity.group()))
            i = entity.end()
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _is_word(char: str) -> bool:
    return char in ":.-_@" or unicodedata.category(char)[0] in "LN"


def mentions_in(texts: Sequence[str], usernames: Sequence[str]) -> frozenset[str]:
    """The @mentions Mattermost would notify for a post whose mention-enabled texts (message,
    attachments' pretext, text and field values) are `texts`: the server's
    StandardMentionParser on the text of the Markdown (code left out)."""
    known = {"@" + name for name in usernames} | set(SYSTEM_MENTIONS)
    found: set[str] = set()

    def check(word: str) -> bool:
        if word.lower() in known:
            found.add(word.lower())
            return True
        return False

    for raw in texts:
        text = _scan(raw, None)
        words = "".join(c if _is_word(c) else " " for c in text).split()
        for word in words:
            if word.startswith(":") and word.endswith(":") and len(word) > 1:
                continue  # an emoji
            word = word.lstrip(":.-_")
            if check(word):
                continue
            trimmed = word
            while trimmed and trimmed[-1] in ".-:_":
                trimmed = trimmed[:-1]
                if check(trimmed):
                    break
            else:
                if not word.startswith("@") and any(c in word for c in ".-:"):
                    for part in re.split(r"[.\-:]", word):
                        check(part)
    return frozenset(found)


def links_in(text: str) -> list[str]:
    """The links a Mattermost client would render in a Markdown text: `[label](url)`, `<url>`
    autolinks, and bare URLs, `www.` hosts, `mailto:`/`tel:` and e-mail addresses (GFM)."""
    shown = _scan(text, "\x01")
    markdown = r"\[[^\[\]]*\]\(([^()\s]*)\)"
    auto = r"<((?:https?|ftp|mailto|tel):[^>\s]*)>"
    found = re.findall(markdown, shown) + re.findall(auto, shown, re.I)
    rest = re.sub(auto, " ", re.sub(markdown, " ", shown), flags=re.I)
    bare = (
        r"(?<![\w\x01])((?:https?|ftp)://[^\s<>\x01]+|www\.[^\s<>\x01]+|(?:mailto|tel):[^\s\x01]+)"
    )
    found += re.findall(bare, rest, re.I)
    found += re.findall(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.[A-Za-z]{2,}", rest)
    return found


def mention_texts(message: str, attachments: Sequence[Any]) -> list[str]:
    """A post's mention-enabled texts (the server's getMentionsEnabledFields)."""
    texts = [message]
    for attachment in attachments:
        if not isinstance(attachment, dict):
            continue
        texts += [t for t in (attachment.get("pretext"), attachment.get("text")) if t]
        for item in attachment.get("fields") or ():
            if isinstance(item, dict) and isinstance(item.get("value"), str) and item["value"]:
                texts.append(item["value"])
    return [t for t in texts if isinstance(t, str)]


def slack_compatible(text: str) -> str:
    """The server's ProcessSlackText and link conversion, applied to a webhook's texts."""
    for slack, mattermost in (("<!channel>", "@channel"), ("<!here>", "@here"), ("<!all>", "@all")):
        text = text.replace(slack, mattermost)
    for user_id, name in USERS.items():
        text = text.replace(f"<@{user_id}>", "@" + name)
    return _LINK.sub(r"[\2](\1)", text)


# ---------------------------------------------------------------- records


@dataclass(frozen=True)
class Post:
    """A post the fake accepted, as it was created."""

    id: str
    channel_id: str
    root_id: str
    message: str
    attachments: list[dict[str, Any]]
    via: str  # "api" or "webhook:<key>"
    received: float
    mentions: frozenset[str]  # what the server would notify: "@here", "@all", "@alice", ...
    username: str | None = None
    icon_url: str | None = None
    split: bool = False  # one of several posts a webhook's too long text was split into
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Patch:
    id: str
    message: str | None
    attachments: list[dict[str, Any]] | None
    received: float
    mentions: frozenset[str]


@dataclass(frozen=True)
class RequestRecord:
    """One request and how it was answered (status None: no HTTP answer at all)."""

    method: str
    path: str
    target: str | None
    status: int | None
    error: str | None
    received: float
    body: Any
    headers: dict[str, str]
    scripted: str | None = None


class _Answer(Exception):
    def __init__(self, status: int, error_id: str, message: str = "") -> None:
        self.status, self.error_id, self.message = status, error_id, message or error_id


def error_body(status: int, error_id: str, message: str = "") -> Response:
    body = {
        "id": error_id,
        "message": message or error_id,
        "detailed_error": "",
        "request_id": "req0000000000000000000000a",
        "status_code": status,
    }
    return Response(json.dumps(body), status_code=status, media_type=JSON_TYPE)


class FakeMattermost(FakeServer[RequestRecord]):
    """The fake server. Use as a context manager or call start()/stop()."""

    STEP = _STEP

    def __init__(
        self,
        *,
        channels: Mapping[str, str] = DEFAULT_CHANNELS,
        hooks: Mapping[str, str] = DEFAULT_HOOKS,
        token: str = TOKEN,
        max_post_size: int = MAX_POST_SIZE,
        rate_limit: tuple[float, int] | None = None,
        hang_seconds: float = 35.0,
    ) -> None:
        super().__init__(hang_seconds=hang_seconds)
        self.token = token
        self.max_post_size = max_post_size
        self.webhooks_enabled = True
        self._channels = dict(channels)
        self._member = set(channels) - {OUTSIDE}
        self._archived = {ARCHIVED} & set(channels)
        self._hooks = dict(hooks)
        self._rate = rate_limit
        self._buckets: dict[str, tuple[float, float]] = {}
        self._count = 0
        self._posts: list[Post] = []
        self._current: dict[str, dict[str, Any]] = {}
        self._patches: list[Patch] = []
        self.app = Starlette(
            routes=[
                Route("/hooks/{key}", self._hook, methods=["POST"]),
                Route("/api/v4/posts", self._create, methods=["POST"]),
                Route("/api/v4/posts/{post_id}/patch", self._patch, methods=["PUT"]),
            ]
        )

    # ---------------------------------------------------------------- addresses and controls

    @property
    def url(self) -> str:
        """The server's address, as a bot's `url` names it."""
        return f"http://127.0.0.1:{self.port}"

    def webhook_url(self, key: str) -> str:
        return f"{self.url}/hooks/{key}"

    def _forget(self) -> None:
        self._posts.clear()
        self._current.clear()
        self._patches.clear()
        self._buckets.clear()

    def set_rate_limit(self, rate_limit: tuple[float, int] | None) -> None:
        """(requests per second, burst) per token or client address, like the server's."""
        with self._lock:
            self._rate = rate_limit
            self._buckets.clear()

    def delete_post(self, post_id: str) -> None:
        """As a person deleting the post in the client."""
        with self._lock:
            self._current[post_id]["delete_at"] = int(time.time() * 1000)

    def delete_hook(self, key: str) -> None:
        with self._lock:
            self._hooks.pop(key, None)

    @property
    def posts(self) -> list[Post]:
        return self._snapshot(self._posts)

    @property
    def patches(self) -> list[Patch]:
        return self._snapshot(self._patches)

    def posts_in(self, channel_id: str) -> list[Post]:
        return [p for p in self.posts if p.channel_id == channel_id]

    def current(self, post_id: str) -> dict[str, Any]:
        """The post as it reads now (after patches)."""
        with self._lock:
            return json.loads(json.dumps(self._current[post_id]))

    def wait_for_posts(self, count: int, timeout: float = 10.0) -> list[Post]:
        return self._wait_for(lambda: self.posts, count, timeout)

    # ---------------------------------------------------------------- handlers

    async def _hook(self, request: Request) -> Response:
        key = request.path_params["key"]
        if not re.fullmatch(r"[A-Za-z0-9]+", key):  # the server's route takes only these
            return await self._answer(request, key, error_body(404, "api.context.404.app_error"))
        return await self._handle(
            request, key, lambda body, at, _headers: self._hook_post(key, body, at)
        )

    async def _create(self, request: Request) -> Response:
        return await self._handle(request, None, self._api_post)

    async def _patch(self, request: Request) -> Response:
        post_id = request.path_params["post_id"]
        with self._lock:
            channel = self._current.get(post_id, {}).get("channel_id")
        return await self._handle(
            request, channel, lambda body, at, headers: self._api_patch(post_id, body, at, headers)
        )

    async def _handle(self, request: Request, target: str | None, work: Any) -> Response:
        received = time.monotonic()
        raw = await request.body()
        body: Any = None
        with contextlib.suppress(ValueError):
            if raw.startswith(b"payload="):
                body = json.loads(parse_qs(raw.decode())["payload"][-1])
            else:
                body = json.loads(raw)
        if target is None and isinstance(body, dict) and isinstance(body.get("channel_id"), str):
            target = body["channel_id"]
        step = self._next_step(target)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        path = request.url.path
        if step in ("timeout", "drop_connection"):  # recorded now: no answer will come
            self._record(request.method, path, target, None, step, received, body, headers, step)
            return await (self._hang(request) if step == "timeout" else self._drop(request))
        if step is not None and step != "timeout_after_post":
            response = self._play(step)
            status = response.status_code
            self._record(request.method, path, target, status, step, received, body, headers, step)
            return response
        limited = self._limited(request)
        if limited is not None:
            self._record(
                request.method, path, target, 429, "limit exceeded", received, body, headers
            )
            return limited
        try:
            response = work(body, received, request.headers)
            error = None
        except _Answer as answer:
            response, error = (
                error_body(answer.status, answer.error_id, answer.message),
                (answer.error_id),
            )
        for name, value in self._rate_headers(request).items():
            response.headers[name] = value
        self._record(
            request.method, path, target, response.status_code, error, received, body, headers, step
        )
        if step == "timeout_after_post":
            return await self._hang(request)
        return response

    async def _answer(self, request: Request, target: str, response: Response) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        self._record(
            request.method,
            request.url.path,
            target,
            response.status_code,
            None,
            time.monotonic(),
            None,
            headers,
        )
        return response

    def _hook_post(self, key: str, body: Any, received: float) -> Response:
        if not self.webhooks_enabled:
            raise _Answer(501, "web.incoming_webhook.disabled.app_error")
        if not isinstance(body, dict):
            raise _Answer(400, "web.incoming_webhook.parse.app_error")
        text = body.get("text") or ""
        attachments = body.get("attachments")
        if not isinstance(text, str) or (not text and attachments is None):
            raise _Answer(400, "web.incoming_webhook.text.app_error")
        with self._lock:
            channel = self._hooks.get(key)
        if channel is None:
            raise _Answer(400, "web.incoming_webhook.invalid.app_error", "Invalid webhook.")
        if channel in self._archived:
            raise _Answer(500, "api.post.create_webhook_post.creating.app_error")
        text = slack_compatible(text)
        attachments = [_webhook_attachment(a) for a in attachments or () if isinstance(a, dict)]
        if len(json.dumps({"attachments": attachments}, ensure_ascii=False)) > PROPS_MAX_USER:
            raise _Answer(400, "web.incoming_webhook.split_props_length.app_error")
        pieces = [text[i : i + self.max_post_size] for i in range(0, len(text), self.max_post_size)]
        for n, piece in enumerate(pieces or [""]):
            self._accept(
                channel,
                "",
                piece,
                attachments if n == len(pieces or [""]) - 1 else [],
                f"webhook:{key}",
                received,
                body,
                split=len(pieces) > 1,
                username=body.get("username"),
                icon_url=body.get("icon_url"),
            )
        return PlainTextResponse("ok")

    def _authorized(self, request_headers: Mapping[str, str]) -> None:
        auth = request_headers.get("authorization", "")
        if not auth.lower().startswith("bearer ") or auth[7:].strip() != self.token:
            raise _Answer(
                401,
                "api.context.session_expired.app_error",
                "Invalid or expired session, please login again.",
            )

    def _api_post(self, body: Any, received: float, headers: Mapping[str, str]) -> Response:
        self._authorized(headers)
        if not isinstance(body, dict):
            raise _Answer(400, "api.context.invalid_body_param.app_error")
        channel = body.get("channel_id")
        if not isinstance(channel, str) or channel not in self._member:
            raise _Answer(
                403,
                "api.context.permissions.app_error",
                "You do not have the appropriate permissions.",
            )
        if channel in self._archived:
            raise _Answer(400, "api.post.create_post.can_not_post_to_deleted.error")
        message, attachments = self._checked(body)
        root = body.get("root_id") or ""
        if root:
            if not isinstance(root, str) or not _ID.match(root):
                raise _Answer(400, "model.post.is_valid.root_id.app_error")
            with self._lock:
                parent = self._current.get(root)
            if (
                parent is None
                or parent["delete_at"]
                or parent["channel_id"] != channel
                or parent["root_id"]
            ):
                raise _Answer(400, "api.post.create_post.root_id.app_error")
        post = self._accept(channel, root, message, attachments, "api", received, body)
        return Response(json.dumps(self.current(post.id)), status_code=201, media_type=JSON_TYPE)

    def _api_patch(
        self, post_id: str, body: Any, received: float, headers: Mapping[str, str]
    ) -> Response:
        self._authorized(headers)
        with self._lock:
            post = self._current.get(post_id)
        if post is None or post["delete_at"] or post["user_id"] != BOT_USER_ID:
            raise _Answer(
                403,
                "api.context.permissions.app_error",
                "You do not have the appropriate permissions.",
            )
        if not isinstance(body, dict):
            raise _Answer(400, "api.context.invalid_body_param.app_error")
        message, attachments = self._checked(body, patch=True)
        with self._lock:
            current = self._current[post_id]
            if "message" in body:
                current["message"] = message
            if "props" in body:
                current["props"] = {"from_bot": "true", "attachments": attachments}
            current["edit_at"] = current["update_at"] = int(time.time() * 1000)
            texts = mention_texts(current["message"], current["props"].get("attachments", []))
            self._patches.append(
                Patch(
                    post_id,
                    message if "message" in body else None,
                    attachments if "props" in body else None,
                    received,
                    mentions_in(texts, list(USERS.values())),
                )
            )
        return Response(json.dumps(self.current(post_id)), media_type=JSON_TYPE)

    def _checked(self, body: dict[str, Any], patch: bool = False) -> tuple[str, list[Any]]:
        message = body.get("message", "")
        if not isinstance(message, str):
            raise _Answer(400, "api.context.invalid_body_param.app_error")
        if len(message) > self.max_post_size:
            raise _Answer(400, "model.post.is_valid.msg.app_error")
        props = body.get("props") or {}
        attachments = props.get("attachments") if isinstance(props, dict) else None
        attachments = [a for a in attachments or () if isinstance(a, dict)]
        if len(json.dumps(props, ensure_ascii=False)) > PROPS_MAX:
            raise _Answer(400, "model.post.is_valid.props.app_error")
        if not patch and not message and not attachments:
            raise _Answer(400, "api.post.create_post.message_empty.app_error")
        return message, attachments

    def _accept(
        self,
        channel: str,
        root: str,
        message: str,
        attachments: list[Any],
        via: str,
        received: float,
        body: dict[str, Any],
        *,
        split: bool = False,
        username: Any = None,
        icon_url: Any = None,
    ) -> Post:
        with self._lock:
            self._count += 1
            post_id = f"post{self._count:022d}"
            now = int(time.time() * 1000)
            mentions = mentions_in(mention_texts(message, attachments), list(USERS.values()))
            post = Post(
                post_id,
                channel,
                root,
                message,
                attachments,
                via,
                received,
                mentions,
                username if isinstance(username, str) else None,
                icon_url if isinstance(icon_url, str) else None,
                split,
                body,
            )
            self._posts.append(post)
            self._current[post_id] = {
                "id": post_id,
                "create_at": now,
                "update_at": now,
                "edit_at": 0,
                "delete_at": 0,
                "is_pinned": False,
                "user_id": BOT_USER_ID,
                "channel_id": channel,
                "root_id": root,
                "original_id": "",
                "message": message,
                "type": "slack_attachment" if attachments else "",
                "props": {
                    "from_bot": "true",
                    **({"attachments": attachments} if attachments else {}),
                },
                "hashtags": "",
                "pending_post_id": "",
                "reply_count": 0,
                "metadata": {},
            }
            if root:
                self._current[root]["reply_count"] += 1
            return post

    # ---------------------------------------------------------------- rate limit and scripts

    def _limited(self, request: Request) -> Response | None:
        with self._lock:
            if self._rate is None:
                return None
            rate, burst = self._rate
            key = self._limit_key(request)
            tokens, at = self._buckets.get(key, (float(burst), time.monotonic()))
            now = time.monotonic()
            tokens = min(float(burst), tokens + (now - at) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return None
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / rate
            full = (burst - tokens) / rate
        headers = {
            "X-RateLimit-Limit": str(burst + 1),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(math.ceil(full)),
            "Retry-After": str(math.ceil(wait)),
            "X-Content-Type-Options": "nosniff",
        }
        return PlainTextResponse("limit exceeded\n", status_code=429, headers=headers)

    def _rate_headers(self, request: Request) -> dict[str, str]:
        with self._lock:
            if self._rate is None:
                return {}
            rate, burst = self._rate
            tokens, _ = self._buckets.get(self._limit_key(request), (float(burst), 0.0))
        return {
            "X-RateLimit-Limit": str(burst + 1),
            "X-RateLimit-Remaining": str(int(tokens)),
            "X-RateLimit-Reset": str(math.ceil((burst - tokens) / rate)),
        }

    def _limit_key(self, request: Request) -> str:
        auth = request.headers.get("authorization")
        return auth or (request.client.host if request.client else "?")

    def _play(self, step: str) -> Response:
        if step.startswith("ratelimited"):
            after = step.partition(":")[2] or "1"
            headers = {
                "X-RateLimit-Limit": "101",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": after if after != "none" else "1",
            }
            if after != "none":
                headers["Retry-After"] = after
            return PlainTextResponse("limit exceeded\n", status_code=429, headers=headers)
        if step == "server_error" or step.startswith("http:"):
            status = 500 if step == "server_error" else int(step[5:])
            page = f"<html><body><h1>{status}</h1></body></html>"
            return Response(page, status_code=status, media_type="text/html")
        _, status, error_id = step.split(":", 2)  # error:NNN:<id>
        return error_body(int(status), error_id)

    def _record(
        self,
        method: str,
        path: str,
        target: str | None,
        status: int | None,
        error: str | None,
        received: float,
        body: Any,
        headers: dict[str, str],
        scripted: str | None = None,
    ) -> None:
        self._keep(
            RequestRecord(method, path, target, status, error, received, body, headers, scripted)
        )


def _webhook_attachment(attachment: dict[str, Any]) -> dict[str, Any]:
    """An attachment as a webhook stores it: Slack compatibility on its texts."""
    out = dict(attachment)
    for name in ("pretext", "text", "title"):
        if isinstance(out.get(name), str):
            out[name] = slack_compatible(out[name])
    fields = []
    for item in out.get("fields") or ():
        if isinstance(item, dict):
            item = dict(item)
            if item.get("value") is not None:
                item["value"] = slack_compatible(str(item["value"]))
            fields.append(item)
    if "fields" in out:
        out["fields"] = fields
    return out
