"""A fake Slack for tests, served over real HTTP: the Web API methods relay calls
(`chat.postMessage`, `chat.update`, `auth.test`) and incoming webhooks, answering with Slack's
status codes, bodies and content types (see ../shared/SLACK.md).

It owns: the channel/hook/token setup, Block Kit checks, scripted failures per channel or hook,
an optional per-channel rate limit, and a thread-safe record of every request and every
accepted message (with `time.monotonic()` arrival times, so tests can assert pacing).

Choices where Slack is vague or where the fake must pick one behaviour:
- `thread_ts` must equal, as a string, the `ts` of a message in that channel. Anything else
  (a float-formatted ts such as "1700000000.0001", an unknown ts) is accepted and posted as a
  new top-level message: that is how the thread is "silently lost" on Slack. The recorded
  `Message.requested_thread_ts` keeps what the client sent, `Message.thread_ts` where it landed.
  A `thread_ts` naming a reply threads under that reply's parent.
- `msg_blocks_too_long` is answered when the text across all blocks exceeds
  `blocks_chars_limit` (13,000 by default); `msg_too_long` when `text` exceeds 40,000 chars.
- An `image_url` whose host ends in `.invalid` cannot be "downloaded": invalid_blocks.
- Webhooks answer 429 with the text/plain body `rate_limited`.
- chat.update keeps the previous blocks when `blocks` is omitted; `"blocks": []` removes them.

Scripted steps (`FakeSlack.script(target, steps)`; target = a hook name, else a channel name
"#x"/"x" or ID), consumed one per request for that target, in order:
    "ratelimited[:N]"    429, Retry-After N (default 1); "ratelimited:none" omits the header
    "server_error"       HTTP 500 with an HTML body ("http:NNN" for any other status)
    "timeout"            no answer: hangs until the client gives up (or `hang_seconds`,
                         35 s by default: longer than slack-sdk's 30 s), then closes the
                         socket; nothing is posted
    "timeout_after_post" the message IS posted, then no answer (like a lost response)
    "drop_connection"    the socket is closed without any response; nothing is posted
    "<slack_error_code>" Web API: HTTP 200 {"ok": false, "error": code};
                         webhook: text/plain code with its HTTP status (404 no_service, ...)

Button clicks (interactivity tests): `click(channel_id, ts, action_id, user)` is the
`block_actions` payload Slack would send an app for a click on a button of a message the fake
holds, its `value` as the message carries it; the test signs and posts it.

Several clients (replica tests): `api_url_for("r1")` is the Web API under the prefix `/r1/`;
each request records the prefix it came through as `RequestRecord.client`.

Standalone (crash tests): `python tests/fakeslack.py --port N --state-file F` appends every
accepted message as one JSON line to F. `GET /_fake/health`, `GET /_fake/messages`,
`GET /_fake/requests` and `POST /_fake/script` ({"target": ..., "steps": [...]}) expose the
same controls over HTTP.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fakeserver import FakeServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

VALID_TOKEN = "xoxb-test-token"
TEAM_ID = "T000"
HOOK_TEAM, HOOK_BOT = "T000", "B000"
BOT_USER_ID = "U0FAKEBOT"
BOT_ID = "B0FAKEBOT"
OTHER_USER_ID = "U0SOMEONE"

DEFAULT_CHANNELS: Mapping[str, str] = {
    "browser-alerts": "C0ALERTS01",
    "browser-events": "C0EVENTS01",
    "general": "C0GENERAL1",
}
DEFAULT_ARCHIVED: Mapping[str, str] = {"old-alerts": "C0ARCHIVE1"}
DEFAULT_HOOKS: Mapping[str, str] = {
    "alerts-hook": "browser-alerts",
    "events-hook": "browser-events",
    "archived-hook": "old-alerts",
}

MAX_BLOCKS = 50
MAX_TEXT = 40_000
JSON_TYPE = "application/json; charset=utf-8"

# A webhook answers a Slack error code with this HTTP status (SLACK.md, incoming webhooks).
WEBHOOK_STATUS: Mapping[str, int] = {
    "invalid_payload": 400,
    "no_text": 400,
    "invalid_blocks": 400,
    "too_many_attachments": 400,
    "action_prohibited": 403,
    "posting_to_general_channel_denied": 403,
    "invalid_token": 403,
    "channel_not_found": 404,
    "no_service": 404,
    "no_service_id": 404,
    "no_team": 404,
    "user_not_found": 404,
    "channel_is_archived": 410,
    "team_disabled": 410,
    "internal_error": 500,
}

_STEP = re.compile(
    r"^(?:ratelimited(?::(?:\d+|none))?|server_error|http:[1-5]\d\d|timeout|"
    r"timeout_after_post|drop_connection|[a-z][a-z0-9_]*)$"
)


@dataclass(frozen=True)
class Message:
    """A message the fake accepted, as it was first posted."""

    channel: str
    ts: str
    thread_ts: str | None
    requested_thread_ts: str | None
    text: str | None
    blocks: list[dict[str, Any]] | None
    received: float
    via: str
    user: str = BOT_USER_ID
    reply_broadcast: bool = False
    unfurl_links: Any = None
    unfurl_media: Any = None
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Update:
    """An accepted chat.update."""

    channel: str
    ts: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    received: float


@dataclass(frozen=True)
class RequestRecord:
    """One request and how the fake answered it (status None: no HTTP answer at all)."""

    method: str
    target: str | None
    status: int | None
    error: str | None
    received: float
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)
    scripted: str | None = None
    client: str | None = None  # the prefix of `api_url_for(client)`, None for `api_url`


class _BadBody(Exception):
    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(code)


def api_json(
    payload: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(payload), status_code=status, media_type=JSON_TYPE, headers=dict(headers or {})
    )


class BlockChecker:
    """Block Kit checks with Slack's error message format: `[ERROR] ... [json-pointer:/...]`."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.text_chars = 0

    def error(self, message: str, pointer: str) -> None:
        self.errors.append(f"[ERROR] {message} [json-pointer:{pointer}]")

    def length(self, value: Any, pointer: str, maximum: int, minimum: int = 1) -> bool:
        if not isinstance(value, str):
            self.error("must be a string", pointer)
            return False
        if len(value) < minimum:
            self.error(f"must be more than {minimum - 1} characters", pointer)
            return False
        if len(value) > maximum:
            self.error(f"must be less than {maximum + 1} characters", pointer)
            return False
        return True

    def text_object(self, obj: Any, pointer: str, maximum: int, plain_only: bool = False) -> None:
        if not isinstance(obj, dict):
            self.error("must provide an object", pointer)
            return
        allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
        if obj.get("type") not in allowed:
            self.error("must be a valid enum value", f"{pointer}/type")
        text = obj.get("text")
        if text is None:
            self.error("missing required field: text", pointer)
            return
        if self.length(text, f"{pointer}/text", maximum):
            self.text_chars += len(text)

    def url(self, value: Any, pointer: str, maximum: int = 3000) -> None:
        if not self.length(value, pointer, maximum):
            return
        if not re.match(r"^https?://[^\s]+$", value):
            self.error("must be a valid URL", pointer)

    def image_url(self, value: Any, pointer: str) -> None:
        self.url(value, pointer)
        host = re.sub(r"^https?://([^/:?#]*).*$", r"\1", value) if isinstance(value, str) else ""
        if host.endswith(".invalid"):
            self.error("downloading image failed", pointer)

    def element(self, obj: Any, pointer: str, action_ids: set[str]) -> None:
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            self.error("must provide an object", pointer)
            return
        kind = obj["type"]
        if kind == "image":
            self.image_url(obj.get("image_url"), f"{pointer}/image_url")
            if "alt_text" not in obj:
                self.error("missing required field: alt_text", pointer)
            else:
                self.length(obj["alt_text"], f"{pointer}/alt_text", 2000)
            return
        if kind == "button":
            self.text_object(obj.get("text"), f"{pointer}/text", 75, plain_only=True)
            if "url" in obj:
                self.url(obj["url"], f"{pointer}/url")
            if "value" in obj:
                self.length(obj["value"], f"{pointer}/value", 2000)
            if "style" in obj and obj["style"] not in ("primary", "danger"):
                self.error("must be a valid enum value", f"{pointer}/style")
        action_id = obj.get("action_id")
        if action_id is not None and self.length(action_id, f"{pointer}/action_id", 255):
            if action_id in action_ids:
                self.error("duplicate action_id", f"{pointer}/action_id")
            action_ids.add(action_id)

    def block(self, block: Any, pointer: str, block_ids: set[str]) -> None:
        if not isinstance(block, dict):
            self.error("must provide an object", pointer)
            return
        block_id = block.get("block_id")
        if block_id is not None and self.length(block_id, f"{pointer}/block_id", 255):
            if block_id in block_ids:
                self.error("duplicate block_id", f"{pointer}/block_id")
            block_ids.add(block_id)
        kind = block.get("type")
        check = getattr(self, f"block_{kind}", None) if isinstance(kind, str) else None
        if check is None:
            self.error(f"unsupported type: {kind}", f"{pointer}/type")
            return
        check(block, pointer)

    def block_section(self, block: dict[str, Any], pointer: str) -> None:
        if "text" not in block and "fields" not in block:
            self.error("must provide either text or fields", pointer)
        if "text" in block:
            self.text_object(block["text"], f"{pointer}/text", 3000)
        if "fields" in block:
            fields = block["fields"]
            if not isinstance(fields, list) or not fields:
                self.error("must provide an array with at least 1 item", f"{pointer}/fields")
            elif len(fields) > 10:
                self.error("no more than 10 items allowed", f"{pointer}/fields")
            else:
                for i, item in enumerate(fields):
                    self.text_object(item, f"{pointer}/fields/{i}", 2000)
        if "accessory" in block:
            self.element(block["accessory"], f"{pointer}/accessory", set())

    def block_header(self, block: dict[str, Any], pointer: str) -> None:
        self.text_object(block.get("text"), f"{pointer}/text", 150, plain_only=True)

    def block_divider(self, block: dict[str, Any], pointer: str) -> None:
        del block, pointer

    def elements(self, block: dict[str, Any], pointer: str, maximum: int) -> list[Any]:
        """The block's `elements` (none when they are not a list of 1 to `maximum` items)."""
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            self.error("must provide an array with at least 1 item", f"{pointer}/elements")
            return []
        if len(elements) > maximum:
            self.error(f"no more than {maximum} items allowed", f"{pointer}/elements")
            return []
        return elements

    def block_context(self, block: dict[str, Any], pointer: str) -> None:
        for i, item in enumerate(self.elements(block, pointer, 10)):
            item_pointer = f"{pointer}/elements/{i}"
            if isinstance(item, dict) and item.get("type") == "image":
                self.element(item, item_pointer, set())
            else:
                self.text_object(item, item_pointer, 3000)

    def block_actions(self, block: dict[str, Any], pointer: str) -> None:
        action_ids: set[str] = set()
        for i, item in enumerate(self.elements(block, pointer, 25)):
            self.element(item, f"{pointer}/elements/{i}", action_ids)

    def block_image(self, block: dict[str, Any], pointer: str) -> None:
        if "slack_file" not in block:
            self.image_url(block.get("image_url"), f"{pointer}/image_url")
        if "alt_text" not in block:
            self.error("missing required field: alt_text", pointer)
        else:
            self.length(block["alt_text"], f"{pointer}/alt_text", 2000)
        if "title" in block:
            self.text_object(block["title"], f"{pointer}/title", 2000, plain_only=True)

    def block_rich_text(self, block: dict[str, Any], pointer: str) -> None:
        if not isinstance(block.get("elements"), list):
            self.error("must provide an array", f"{pointer}/elements")

    def block_markdown(self, block: dict[str, Any], pointer: str) -> None:
        if self.length(block.get("text"), f"{pointer}/text", 12_000):
            self.text_chars += len(block["text"])

    def blocks(self, blocks: list[Any]) -> None:
        if len(blocks) > MAX_BLOCKS:
            self.error(f"no more than {MAX_BLOCKS} items allowed", "/blocks")
            return
        block_ids: set[str] = set()
        for i, block in enumerate(blocks):
            self.block(block, f"/blocks/{i}", block_ids)


def check_message(text: Any, blocks: Any, blocks_chars_limit: int) -> tuple[str, list[str]] | None:
    """Slack's checks of a message payload: None, or (error code, response_metadata messages)."""
    if text is not None and not isinstance(text, str):
        return "invalid_arguments", ["[ERROR] must be a string [json-pointer:/text]"]
    if blocks is not None and not isinstance(blocks, list):
        return "invalid_blocks_format", []
    if not text and not blocks:
        return "no_text", []
    if text and len(text) > MAX_TEXT:
        return "msg_too_long", []
    if blocks:
        checker = BlockChecker()
        checker.blocks(blocks)
        if checker.errors:
            return "invalid_blocks", checker.errors
        if checker.text_chars > blocks_chars_limit:
            return "msg_blocks_too_long", []
    return None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


def _parse_form(raw: bytes) -> dict[str, Any]:
    pairs = parse_qs(raw.decode(), keep_blank_values=True)
    params: dict[str, Any] = {key: values[-1] for key, values in pairs.items()}
    if isinstance(params.get("blocks"), str):
        try:
            params["blocks"] = json.loads(params["blocks"])
        except json.JSONDecodeError:
            raise _BadBody("invalid_blocks_format") from None
    return params


async def _read_api_params(request: Request) -> dict[str, Any]:
    raw = await request.body()
    params: dict[str, Any] = dict(request.query_params)
    if not raw:
        return params
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _BadBody("invalid_json") from None
        if not isinstance(body, dict):
            raise _BadBody("json_not_object")
        params.update(body)
    elif content_type == "application/x-www-form-urlencoded":
        params.update(_parse_form(raw))
    else:
        raise _BadBody("invalid_form_data")
    return params


def _step_error(step: str, *, webhook: bool) -> str:
    """What a scripted step looks like to the client, for the request record."""
    if step.startswith("ratelimited"):
        return "rate_limited" if webhook else "ratelimited"
    if step == "server_error":
        return "http_500"
    if step.startswith("http:"):
        return f"http_{step[5:]}"
    return step


class FakeSlack(FakeServer[RequestRecord]):
    """The fake Slack server. Use as a context manager or call start()/stop()."""

    STEP = _STEP

    def __init__(
        self,
        *,
        channels: Mapping[str, str] = DEFAULT_CHANNELS,
        archived: Mapping[str, str] = DEFAULT_ARCHIVED,
        hooks: Mapping[str, str] = DEFAULT_HOOKS,
        token: str = VALID_TOKEN,
        port: int = 0,
        rate_limit: int | None = None,
        hang_seconds: float = 35.0,
        blocks_chars_limit: int = 13_000,
        state_file: Path | None = None,
    ) -> None:
        super().__init__(port=port, hang_seconds=hang_seconds)
        self.token = token
        self.blocks_chars_limit = blocks_chars_limit
        self._names = {**channels, **archived}
        self._archived = set(archived.values())
        self._known_ids = set(self._names.values())
        self._hooks = dict(hooks)
        self._rate_limit = rate_limit
        self._state_file = state_file
        self._ts_counter = 0
        self._messages: list[Message] = []
        self._updates: list[Update] = []
        self._current: dict[tuple[str, str], dict[str, Any]] = {}
        self.app = Starlette(
            routes=[
                Route("/api/{method}", self._api, methods=["GET", "POST"]),
                Route("/{client}/api/{method}", self._api, methods=["GET", "POST"]),
                Route("/services/{team}/{bot}/{name}", self._hook, methods=["POST"]),
                Route("/_fake/health", self._health, methods=["GET"]),
                Route("/_fake/messages", self._dump_messages, methods=["GET"]),
                Route("/_fake/requests", self._dump_requests, methods=["GET"]),
                Route("/_fake/script", self._script_endpoint, methods=["POST"]),
            ]
        )

    # ---------------------------------------------------------------- addresses and controls

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def api_url_for(self, client: str) -> str:
        """The Web API for one of several clients, told apart in `requests` by `client`."""
        return f"http://127.0.0.1:{self.port}/{client}/api/"

    def webhook_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/services/{HOOK_TEAM}/{HOOK_BOT}/{name}"

    def _forget(self) -> None:
        self._messages.clear()
        self._updates.clear()
        self._current.clear()

    def set_rate_limit(self, per_second: int | None) -> None:
        """Answer 429 once more than `per_second` messages arrive on one channel within 1 s."""
        with self._lock:
            self._rate_limit = per_second

    def channel_id(self, name_or_id: str) -> str | None:
        name = name_or_id.removeprefix("#")
        if name in self._names:
            return self._names[name]
        return name if name in self._known_ids else None

    def add_foreign_message(self, channel: str, text: str) -> str:
        """A message someone else posted (chat.update on it: cant_update_message). Returns ts."""
        channel_id = self.channel_id(channel)
        if channel_id is None:
            raise ValueError(f"Unknown channel {channel!r}")
        return self._accept(
            channel_id, {"text": text}, None, time.monotonic(), "foreign", OTHER_USER_ID
        ).ts

    @property
    def messages(self) -> list[Message]:
        return self._snapshot(self._messages)

    @property
    def updates(self) -> list[Update]:
        return self._snapshot(self._updates)

    def messages_in(self, channel: str) -> list[Message]:
        channel_id = self.channel_id(channel) or channel
        return [m for m in self.messages if m.channel == channel_id]

    def current(self, channel_id: str, ts: str) -> dict[str, Any]:
        """The message as it reads now (after updates): {"text", "blocks", "thread_ts", ...}."""
        with self._lock:
            return dict(self._current[(channel_id, ts)])

    def click(
        self,
        channel_id: str,
        ts: str,
        action_id: str,
        user: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The `block_actions` payload Slack sends an app when someone clicks the button
        `action_id` on the message as it reads now (its `value` as the message holds it).
        `user` overrides the clicking user's fields (id, username, name)."""
        message = self.current(channel_id, ts)
        found = [
            (block, element)
            for block in message.get("blocks") or []
            if block.get("type") == "actions"
            for element in block.get("elements") or []
            if element.get("action_id") == action_id
        ]
        if not found:
            raise AssertionError(f"the message has no button {action_id!r}")
        block, element = found[0]
        who = {"id": "U0CLICKER", "username": "clicker", "name": "clicker", "team_id": TEAM_ID}
        who.update(user or {})
        return {
            "type": "block_actions",
            "user": who,
            "api_app_id": "A0FAKEAPP",
            "token": "verification-token-unused",
            "container": {
                "type": "message",
                "message_ts": ts,
                "channel_id": channel_id,
                "is_ephemeral": False,
            },
            "trigger_id": "1.2.3",
            "team": {"id": TEAM_ID, "domain": "fake"},
            "channel": {"id": channel_id, "name": "channel"},
            "message": {"type": "message", "user": BOT_USER_ID, "ts": ts, **message},
            "response_url": f"http://127.0.0.1:{self.port}/actions/T000/1/x",
            "actions": [
                {
                    "action_id": element["action_id"],
                    "block_id": block.get("block_id", "b"),
                    "text": element.get("text"),
                    "value": element.get("value"),
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[Message]:
        return self._wait_for(lambda: self.messages, count, timeout)

    # ---------------------------------------------------------------- internals

    def _script_key(self, target: str) -> str:
        if target in self._hooks:
            return f"hook:{target}"
        return f"channel:{self.channel_id(target) or target.removeprefix('#')}"

    def _record(
        self,
        method: str,
        target: str | None,
        status: int | None,
        error: str | None,
        received: float,
        body: dict[str, Any] | None,
        headers: Mapping[str, str],
        scripted: str | None = None,
        client: str | None = None,
    ) -> None:
        safe_body = None if body is None else {k: v for k, v in body.items() if k != "token"}
        safe_headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        self._keep(
            RequestRecord(
                method, target, status, error, received, safe_body, safe_headers, scripted, client
            )
        )

    def _rate_limited(self, channel_id: str, now: float) -> bool:
        with self._lock:
            return self._window_full(channel_id, now, self._rate_limit)

    def _accept(
        self,
        channel_id: str,
        body: Mapping[str, Any],
        thread_ts: str | None,
        received: float,
        via: str,
        user: str = BOT_USER_ID,
    ) -> Message:
        with self._lock:
            self._ts_counter += 100
            seconds, micros = divmod(self._ts_counter, 1_000_000)
            ts = f"{1_700_000_000 + seconds}.{micros:06d}"
            parent = self._current.get((channel_id, thread_ts)) if thread_ts is not None else None
            landed = None if parent is None else (parent.get("thread_ts") or thread_ts)
            blocks = body.get("blocks") or None
            message = Message(
                channel=channel_id,
                ts=ts,
                thread_ts=landed,
                requested_thread_ts=thread_ts,
                text=body.get("text"),
                blocks=blocks,
                received=received,
                via=via,
                user=user,
                reply_broadcast=_truthy(body.get("reply_broadcast")) and landed is not None,
                unfurl_links=body.get("unfurl_links"),
                unfurl_media=body.get("unfurl_media"),
                body={k: v for k, v in body.items() if k != "token"},
            )
            self._messages.append(message)
            self._current[(channel_id, ts)] = {
                "type": "message",
                "user": user,
                "ts": ts,
                "text": message.text or "",
                **({"bot_id": BOT_ID} if user == BOT_USER_ID else {}),
                **({"blocks": blocks} if blocks else {}),
                **({"thread_ts": landed} if landed else {}),
            }
            if self._state_file is not None:
                line = {k: v for k, v in asdict(message).items() if k != "body"}
                with self._state_file.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(line) + "\n")
            return message

    async def _play(self, step: str, request: Request, *, webhook: bool) -> Response:
        """Answer a scripted step other than timeout_after_post."""
        if step.startswith("ratelimited"):
            after = step.partition(":")[2] or "1"
            headers = {} if after == "none" else {"Retry-After": after}
            if webhook:
                return PlainTextResponse("rate_limited", status_code=429, headers=headers)
            return api_json({"ok": False, "error": "ratelimited"}, 429, headers)
        if step == "server_error" or step.startswith("http:"):
            status = 500 if step == "server_error" else int(step[5:])
            page = f"<html><body><h1>{status}</h1>Slack is having trouble.</body></html>"
            return Response(page, status_code=status, media_type="text/html; charset=utf-8")
        if step == "timeout":
            return await self._hang(request)
        if step == "drop_connection":
            return await self._drop(request)
        if webhook:
            return PlainTextResponse(step, status_code=WEBHOOK_STATUS.get(step, 400))
        return api_json({"ok": False, "error": step})

    # ---------------------------------------------------------------- Web API

    async def _api(self, request: Request) -> Response:
        received = time.monotonic()
        method = request.path_params["method"]
        client = request.path_params.get("client")
        headers = dict(request.headers)
        try:
            params = await _read_api_params(request)
        except _BadBody as bad:
            self._record(method, None, 200, bad.code, received, None, headers, client=client)
            return api_json({"ok": False, "error": bad.code})
        target = params.get("channel") if isinstance(params.get("channel"), str) else None
        step = self._next_step(self._script_key(target)) if target else None
        if step is not None and step != "timeout_after_post":
            response = await self._play(step, request, webhook=False)
            status = None if step in ("timeout", "drop_connection") else response.status_code
            self._record(
                method,
                target,
                status,
                _step_error(step, webhook=False),
                received,
                params,
                headers,
                step,
                client,
            )
            return response
        response, error = self._api_answer(method, params, headers, received)
        self._record(
            method, target, response.status_code, error, received, params, headers, step, client
        )
        if step == "timeout_after_post":
            return await self._hang(request)
        return response

    def _api_answer(
        self, method: str, params: dict[str, Any], headers: Mapping[str, str], received: float
    ) -> tuple[Response, str | None]:
        handler = {
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "auth.test": self._auth_test,
        }.get(method)
        if handler is None:
            return api_json(
                {"ok": False, "error": "unknown_method", "req_method": method}, 404
            ), "unknown_method"
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else params.get("token")
        if not token:
            return api_json({"ok": False, "error": "not_authed"}), "not_authed"
        if token != self.token:
            return api_json({"ok": False, "error": "invalid_auth"}), "invalid_auth"
        payload = handler(params, received)
        if payload.get("ok"):
            return api_json(payload), None
        status = 429 if payload["error"] == "ratelimited" else 200
        extra = {"Retry-After": "1"} if status == 429 else {}
        return api_json(payload, status, extra), str(payload["error"])

    def _auth_test(self, params: dict[str, Any], received: float) -> dict[str, Any]:
        del params, received
        return {
            "ok": True,
            "url": "https://fake.slack.test/",
            "team": "Fake Team",
            "user": "relay",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _message_error(self, params: Mapping[str, Any]) -> dict[str, Any] | None:
        problem = check_message(params.get("text"), params.get("blocks"), self.blocks_chars_limit)
        if problem is None:
            return None
        code, messages = problem
        error: dict[str, Any] = {"ok": False, "error": code}
        if messages:
            error["errors"] = messages
            error["response_metadata"] = {"messages": messages}
        return error

    def _post_message(self, params: dict[str, Any], received: float) -> dict[str, Any]:
        channel = params.get("channel")
        channel_id = self.channel_id(channel) if isinstance(channel, str) else None
        if channel_id is None:
            return {"ok": False, "error": "channel_not_found"}
        if channel_id in self._archived:
            return {"ok": False, "error": "is_archived"}
        problem = self._message_error(params)
        if problem is not None:
            return problem
        if self._rate_limited(channel_id, received):
            return {"ok": False, "error": "ratelimited"}
        thread_ts = params.get("thread_ts")
        thread_ts = None if thread_ts in (None, "") else str(thread_ts)
        message = self._accept(channel_id, params, thread_ts, received, "api")
        answer: dict[str, Any] = {
            "ok": True,
            "channel": channel_id,
            "ts": message.ts,
            "message": self.current(channel_id, message.ts),
        }
        if not params.get("text"):
            answer["warning"] = "missing_text"
            answer["response_metadata"] = {"warnings": ["missing_text"]}
        return answer

    def _update(self, params: dict[str, Any], received: float) -> dict[str, Any]:
        channel, ts = params.get("channel"), params.get("ts")
        # chat.update takes the channel ID only: a name is not found.
        if not isinstance(channel, str) or channel not in self._known_ids:
            return {"ok": False, "error": "channel_not_found"}
        if channel in self._archived:
            return {"ok": False, "error": "is_archived"}
        with self._lock:
            existing = self._current.get((channel, str(ts)))
        if existing is None:
            return {"ok": False, "error": "message_not_found"}
        if existing.get("user") != BOT_USER_ID:
            return {"ok": False, "error": "cant_update_message"}
        problem = self._message_error(params)
        if problem is not None:
            return problem
        blocks = params.get("blocks") or None
        with self._lock:
            current = self._current[(channel, str(ts))]
            current["text"] = params.get("text") or ""
            # Like Slack: omitted blocks are kept, an empty list removes them.
            if "blocks" in params:
                current.pop("blocks", None)
            if blocks:
                current["blocks"] = blocks
            current["edited"] = {"user": BOT_USER_ID, "ts": str(ts)}
            self._updates.append(Update(channel, str(ts), params.get("text"), blocks, received))
            message = dict(current)
        return {
            "ok": True,
            "channel": channel,
            "ts": str(ts),
            "text": message["text"],
            "message": message,
        }

    # ---------------------------------------------------------------- incoming webhooks

    async def _hook(self, request: Request) -> Response:
        received = time.monotonic()
        name = request.path_params["name"]
        headers = dict(request.headers)
        raw = await request.body()
        body: dict[str, Any] | None = None
        with contextlib.suppress(ValueError):
            if raw.startswith(b"payload="):
                body = json.loads(parse_qs(raw.decode())["payload"][-1])
            else:
                body = json.loads(raw)
        body = body if isinstance(body, dict) else None
        step = self._next_step(f"hook:{name}")
        if step is not None and step != "timeout_after_post":
            response = await self._play(step, request, webhook=True)
            status = None if step in ("timeout", "drop_connection") else response.status_code
            self._record(
                "webhook",
                name,
                status,
                _step_error(step, webhook=True),
                received,
                body,
                headers,
                step,
            )
            return response
        known = (request.path_params["team"], request.path_params["bot"]) == (HOOK_TEAM, HOOK_BOT)
        status, text = self._hook_answer(name if known else None, body, received)
        self._record(
            "webhook", name, status, None if status == 200 else text, received, body, headers, step
        )
        if step == "timeout_after_post":
            return await self._hang(request)
        extra = {"Retry-After": "1"} if status == 429 else {}
        return PlainTextResponse(text, status_code=status, headers=extra)

    def _hook_answer(
        self, name: str | None, body: dict[str, Any] | None, received: float
    ) -> tuple[int, str]:
        if name is None or name not in self._hooks:
            return 404, "no_service"
        if body is None:
            return 400, "invalid_payload"
        channel_id = self.channel_id(self._hooks[name])
        if channel_id is None:
            return 404, "channel_not_found"
        if channel_id in self._archived:
            return 410, "channel_is_archived"
        problem = check_message(body.get("text"), body.get("blocks"), self.blocks_chars_limit)
        if problem is not None:
            code = problem[0] if problem[0] in ("no_text", "invalid_blocks") else "invalid_payload"
            return 400, code
        if self._rate_limited(channel_id, received):
            return 429, "rate_limited"
        thread_ts = body.get("thread_ts")
        self._accept(
            channel_id,
            body,
            None if thread_ts in (None, "") else str(thread_ts),
            received,
            f"webhook:{name}",
        )
        return 200, "ok"

    # ---------------------------------------------------------------- HTTP controls

    async def _health(self, request: Request) -> Response:
        del request
        return PlainTextResponse("ok")

    async def _dump_messages(self, request: Request) -> Response:
        del request
        return api_json({"messages": [asdict(m) for m in self.messages]})

    async def _dump_requests(self, request: Request) -> Response:
        del request
        return api_json({"requests": [asdict(r) for r in self.requests]})

    async def _script_endpoint(self, request: Request) -> Response:
        body = await request.json()
        try:
            self.script(str(body["target"]), [str(s) for s in body["steps"]])
        except (KeyError, TypeError, ValueError) as exc:
            return api_json({"ok": False, "error": str(exc)}, 400)
        return api_json({"ok": True})


def _parse_pairs(values: Sequence[str]) -> dict[str, str]:
    return dict(value.split("=", 1) for value in values)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Slack for relay's tests.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--state-file",
        type=Path,
        default=None,
        help="append every accepted message to this file as a JSON line",
    )
    parser.add_argument("--token", default=VALID_TOKEN)
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        help="messages per second per channel before answering 429",
    )
    parser.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="NAME=ID",
        help="replace the default channels (repeatable)",
    )
    parser.add_argument(
        "--hook",
        action="append",
        default=[],
        metavar="NAME=CHANNEL",
        help="replace the default incoming webhooks (repeatable)",
    )
    args = parser.parse_args(argv)
    fake = FakeSlack(
        channels=_parse_pairs(args.channel) or DEFAULT_CHANNELS,
        hooks=_parse_pairs(args.hook) or DEFAULT_HOOKS,
        token=args.token,
        port=args.port,
        rate_limit=args.rate_limit,
        state_file=args.state_file,
    )
    fake.serve_forever()


if __name__ == "__main__":
    main()
