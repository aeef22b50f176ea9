"""A fake Google Chat for tests, served over real HTTP: a space's incoming webhooks
(`POST /v1/spaces/{space}/messages?key=KEY&token=TOKEN`), answering with Google's statuses and
error bodies (`{"error": {"code", "message", "status"}}`) and, on success, the created message
(`name: spaces/S/messages/M`, `thread: {name: spaces/S/threads/T}`).

It owns: the webhooks (name -> space, each with its own token; all share Google's webhook API
key), the checks of a message (its fields, `cardsV2` structure, sizes and widget count), the
threads of each space, scripted failures per webhook or space, an optional rate limit per space
(every webhook of a space shares it, as Google's quota does), and a thread-safe record of every
request and every accepted message (`time.monotonic()` arrival times, to assert pacing).

Google's behaviour as the fake plays it (Google Chat API reference, and answers seen by users):
- a wrong or missing `key`: 400 INVALID_ARGUMENT "API key not valid" with an ErrorInfo reason
  `API_KEY_INVALID`; a token that is not one of the space's webhooks: 403 PERMISSION_DENIED
  "The API is called without a valid token"; a space that does not exist (or was deleted):
  404 NOT_FOUND.
- threads: `thread.threadKey` (or `thread.name`) is honoured only with the query parameter
  `messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD` (or `REPLY_MESSAGE_OR_FAIL`).
  Without it the message silently starts a new thread and the key is not kept, as the real
  service does: a sender that forgets the parameter loses every thread. A key is scoped to the
  webhook that set it ("unique to the Chat app that sets it"); a new key starts a thread that
  later messages with the key join. `REPLY_MESSAGE_OR_FAIL` with an unknown `thread.name` is
  404 NOT_FOUND. Keys longer than 4,000 characters are a 400.
- limits: the message (its JSON body) over 32,000 bytes, a card over 32,000 bytes, or more than
  100 widgets in a card, are 400 INVALID_ARGUMENT. Google ignores widgets past the 100th
  instead: the fake is stricter so that a formatter that passes the limit fails the tests.
  More than 2 columns in a `columns` widget, a widget with no known kind or two kinds, a field
  the API does not have, a button without `onClick`, an `openLink` without an http(s) URL, a
  header without `title`, a message with neither `text` nor cards: 400 INVALID_ARGUMENT, with
  messages written like Google's (their exact wording is the fake's choice).
- 429: RESOURCE_EXHAUSTED, without `Retry-After` (Google documents none) unless a scripted
  step gives one. In rate mode (`set_rate_limit(N)`), more than N requests to one space within
  a second (less `RATE_SLACK`, for the jitter of a client that paces itself) get a 429.

Scripted steps (`FakeGoogleChat.script(target, steps)`; target = a webhook name, else a space),
consumed one per request for that target, in order:
    "ratelimited[:N|none]"  429 RESOURCE_EXHAUSTED; `:N` adds `Retry-After: N` (default none)
    "status:NNN"            Google's JSON error for that status (403 PERMISSION_DENIED, ...)
    "html:NNN"              an HTML page with that status (Google's front end, 502 say)
    "timeout"               no answer: hangs until the client gives up, nothing is posted
    "timeout_after_post"    the message IS posted, then no answer (a lost response)
    "drop_connection"       the socket is closed without any response; nothing is posted
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fakeserver import FakeServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

API_KEY = "AIzaSyFakeKeyForRelayTests0000000000"  # Google gives every webhook the same key
REPLY_OPTIONS = ("REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD", "REPLY_MESSAGE_OR_FAIL")
DEFAULT_HOOKS: Mapping[str, str] = {
    "alerts": "AAAAalerts1",
    "events": "AAAAevents1",
    "alerts-bis": "AAAAalerts1",  # a second webhook of the same space
}
MAX_MESSAGE_BYTES = 32_000
MAX_CARD_BYTES = 32_000
MAX_WIDGETS = 100
MAX_THREAD_KEY = 4_000
# a client pacing itself at exactly N a second reaches the fake a few ms early or late; Google
# counts its quota per minute (60 writes a minute per space), not per exact second
RATE_SLACK = 0.05
JSON_TYPE = "application/json; charset=UTF-8"
STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
MESSAGES = {
    400: "Invalid argument.",
    401: "Request had invalid authentication credentials.",
    403: "The API is called without a valid token. Instructions on how to use incoming "
    "webhooks can be found at https://developers.google.com/chat/how-tos/webhooks",
    404: "Requested entity was not found.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
}
MESSAGE_FIELDS = frozenset(
    {"text", "cardsV2", "thread", "fallbackText", "accessoryWidgets", "privateMessageViewer",
     "clientAssignedMessageId", "markupSyntax"}
)  # fmt: skip
_STEP = re.compile(
    r"^(?:ratelimited(?::(?:\d+|none))?|status:[1-5]\d\d|html:[1-5]\d\d|timeout|"
    r"timeout_after_post|drop_connection)$"
)
_PATH_SPACE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Message:
    """A message the fake accepted."""

    name: str  # spaces/S/messages/M
    space: str
    hook: str
    thread: str  # spaces/S/threads/T, where it landed
    new_thread: bool  # it started its thread
    thread_key: str | None  # what the client asked for
    reply_option: str | None
    text: str | None
    cards: list[dict[str, Any]] | None
    received: float
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestRecord:
    """One request and how the fake answered it (status None: no HTTP answer at all). The
    query is kept without `key` and `token`."""

    space: str
    hook: str | None
    status: int | None
    error: str | None  # Google's `status` string of an error answer
    received: float
    body: dict[str, Any] | None
    query: dict[str, str]
    raw_bytes: int
    scripted: str | None = None


class Invalid(Exception):
    """A message Google refuses with 400 INVALID_ARGUMENT."""


def error_body(code: int, message: str | None = None, **extra: Any) -> dict[str, Any]:
    status = STATUS.get(code, "UNKNOWN")
    text = message or MESSAGES.get(code, "Error.")
    return {"error": {"code": code, "message": text, "status": status, **extra}}


def google_json(
    payload: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(payload, indent=2),
        status_code=status,
        media_type=JSON_TYPE,
        headers=dict(headers or {}),
    )


# ---------------------------------------------------------------- message checks


_CARD_FIELDS = frozenset(
    {"header", "sections", "name", "fixedFooter", "cardActions", "sectionDividerStyle",
     "peekCardHeader", "displayStyle"}
)  # fmt: skip
_HEADER_FIELDS = frozenset({"title", "subtitle", "imageUrl", "imageType", "imageAltText"})
_SECTION_FIELDS = frozenset(
    {"header", "widgets", "collapsible", "uncollapsibleWidgetsCount", "collapseControl", "id"}
)
_WIDGET_KINDS: Mapping[str, frozenset[str]] = {
    "textParagraph": frozenset({"text", "maxLines", "textSyntax"}),
    "decoratedText": frozenset(
        {"text", "topLabel", "bottomLabel", "wrapText", "startIcon", "icon", "endIcon",
         "button", "switchControl", "onClick", "topLabelText", "contentText", "bottomLabelText",
         "startIconVerticalAlignment"}
    ),
    "buttonList": frozenset({"buttons"}),
    "divider": frozenset(),
    "columns": frozenset({"columnItems"}),
    "image": frozenset({"imageUrl", "onClick", "altText"}),
}  # fmt: skip
_WIDGET_EXTRA = frozenset({"horizontalAlignment", "id", "visibility", "eventActions"})
_COLUMN_FIELDS = frozenset(
    {"horizontalSizeStyle", "horizontalAlignment", "verticalAlignment", "widgets"}
)
_IN_COLUMNS = frozenset({"textParagraph", "decoratedText", "buttonList", "image"})
_BUTTON_FIELDS = frozenset({"text", "icon", "color", "onClick", "disabled", "altText", "type"})
_BUTTON_TYPES = frozenset({"OUTLINED", "FILLED", "FILLED_TONAL", "BORDERLESS"})


def _unknown(obj: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    for name in obj:
        if name not in known:
            raise Invalid(
                f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': "
                "Cannot find field."
            )


def _text(obj: Mapping[str, Any], name: str, where: str, required: bool = False) -> None:
    value = obj.get(name)
    if value is None:
        if required:
            raise Invalid(f"{where}.{name} is required.")
        return
    if not isinstance(value, str):
        raise Invalid(f"Invalid value at '{where}.{name}' (TYPE_STRING), {json.dumps(value)}")


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(f"Invalid value at '{where}': expected an object.")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(f"Invalid value at '{where}': expected a list.")
    return value


def _url(value: Any, where: str) -> None:
    if not isinstance(value, str) or not re.match(r"^https?://[^\s]+$", value):
        raise Invalid(f"Invalid URL at '{where}'.")


def _button(button: Any, where: str) -> None:
    obj = _object(button, where)
    _unknown(obj, _BUTTON_FIELDS, where)
    _text(obj, "text", where)
    if obj.get("type") is not None and obj["type"] not in _BUTTON_TYPES:
        raise Invalid(f"Invalid value at '{where}.type', {json.dumps(obj['type'])}")
    click = _object(obj.get("onClick"), f"{where}.onClick")
    link = click.get("openLink")
    if link is None:
        raise Invalid(f"{where}.onClick needs an action (openLink for a webhook message).")
    _url(_object(link, f"{where}.onClick.openLink").get("url"), f"{where}.onClick.openLink.url")


def _widget(widget: Any, where: str, allowed: frozenset[str] | None = None) -> int:
    """Check one widget; the widgets it counts for."""
    obj = _object(widget, where)
    kinds = [k for k in obj if k in _WIDGET_KINDS]
    if len(kinds) != 1:
        raise Invalid(f"{where}: a widget needs exactly one kind, got {kinds or 'none'}.")
    kind = kinds[0]
    _unknown(obj, frozenset({kind}) | _WIDGET_EXTRA, where)
    if allowed is not None and kind not in allowed:
        raise Invalid(f"{where}: {kind} is not supported in columns.")
    inner = _object(obj[kind], f"{where}.{kind}")
    _unknown(inner, _WIDGET_KINDS[kind], f"{where}.{kind}")
    if kind == "textParagraph":
        _text(inner, "text", f"{where}.{kind}", required=True)
    elif kind == "decoratedText":
        for name in ("topLabel", "bottomLabel"):
            _text(inner, name, f"{where}.{kind}")
        _text(inner, "text", f"{where}.{kind}", required=True)
    elif kind == "buttonList":
        buttons = _list(inner.get("buttons"), f"{where}.buttonList.buttons")
        for i, button in enumerate(buttons):
            _button(button, f"{where}.buttonList.buttons[{i}]")
    elif kind == "columns":
        items = _list(inner.get("columnItems"), f"{where}.columns.columnItems")
        if not 1 <= len(items) <= 2:
            raise Invalid(f"{where}.columns: at most 2 columns, got {len(items)}.")
        count = 1
        for i, item in enumerate(items):
            column = _object(item, f"{where}.columns.columnItems[{i}]")
            _unknown(column, _COLUMN_FIELDS, f"{where}.columns.columnItems[{i}]")
            held = _list(column.get("widgets"), f"{where}.columns.columnItems[{i}].widgets")
            for j, w in enumerate(held):
                count += _widget(w, f"{where}.columns.columnItems[{i}].widgets[{j}]", _IN_COLUMNS)
        return count
    elif kind == "image":
        _url(inner.get("imageUrl"), f"{where}.image.imageUrl")
    return 1


def _card(card: Any, where: str) -> None:
    obj = _object(card, where)
    _unknown(obj, _CARD_FIELDS, where)
    if "header" in obj:
        header = _object(obj["header"], f"{where}.header")
        _unknown(header, _HEADER_FIELDS, f"{where}.header")
        _text(header, "title", f"{where}.header", required=True)
        _text(header, "subtitle", f"{where}.header")
    widgets = 0
    for i, section in enumerate(_list(obj.get("sections", []), f"{where}.sections")):
        sec = _object(section, f"{where}.sections[{i}]")
        _unknown(sec, _SECTION_FIELDS, f"{where}.sections[{i}]")
        _text(sec, "header", f"{where}.sections[{i}]")
        for j, widget in enumerate(_list(sec.get("widgets", []), f"{where}.sections[{i}].widgets")):
            widgets += _widget(widget, f"{where}.sections[{i}].widgets[{j}]")
    if widgets > MAX_WIDGETS:
        raise Invalid(f"{where}: a card can have at most {MAX_WIDGETS} widgets, got {widgets}.")
    size = len(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_CARD_BYTES:
        raise Invalid(f"{where}: the card is {size} bytes; the maximum is 32 KB.")


def check_message(body: Any, raw_bytes: int | None = None) -> str | None:
    """Why Google would refuse this message body with 400 INVALID_ARGUMENT, or None."""
    try:
        obj = _object(body, "message")
        _unknown(obj, MESSAGE_FIELDS, "message")
        _text(obj, "text", "message")
        cards = _list(obj.get("cardsV2", []), "message.cardsV2")
        for i, item in enumerate(cards):
            entry = _object(item, f"message.cardsV2[{i}]")
            _unknown(entry, frozenset({"cardId", "card"}), f"message.cardsV2[{i}]")
            _text(entry, "cardId", f"message.cardsV2[{i}]")
            if len(cards) > 1 and not entry.get("cardId"):
                raise Invalid(f"message.cardsV2[{i}].cardId is required with several cards.")
            _card(entry.get("card"), f"message.cardsV2[{i}].card")
        if not obj.get("text") and not cards:
            raise Invalid("Message cannot be empty. Discarded message: no text and no cards.")
        if "thread" in obj:
            thread = _object(obj["thread"], "message.thread")
            _unknown(thread, frozenset({"name", "threadKey"}), "message.thread")
            _text(thread, "threadKey", "message.thread")
            _text(thread, "name", "message.thread")
            if len(thread.get("threadKey") or "") > MAX_THREAD_KEY:
                raise Invalid(f"message.thread.threadKey is longer than {MAX_THREAD_KEY}.")
        size = raw_bytes
        if size is None:
            size = len(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode())
        if size > MAX_MESSAGE_BYTES:
            raise Invalid(f"The message is {size} bytes; the maximum is 32,000 bytes.")
    except Invalid as exc:
        return str(exc)
    return None


# ---------------------------------------------------------------- the server


class FakeGoogleChat(FakeServer[RequestRecord]):
    """The fake Google Chat server. Use as a context manager or call start()/stop()."""

    STEP = _STEP

    def __init__(
        self,
        *,
        hooks: Mapping[str, str] = DEFAULT_HOOKS,
        port: int = 0,
        rate_limit: int | None = None,
        hang_seconds: float = 35.0,
    ) -> None:
        super().__init__(port=port, hang_seconds=hang_seconds)
        self._hooks = dict(hooks)  # name -> space
        self._tokens = {f"tok-{name}-{i:04d}": name for i, name in enumerate(hooks)}
        self._spaces = set(hooks.values())
        self._rate_limit = rate_limit
        self._counter = 0
        self._messages: list[Message] = []
        self._threads: dict[str, set[str]] = defaultdict(set)  # space -> thread names
        self._keys: dict[tuple[str, str, str], str] = {}  # (space, hook, key) -> thread name
        self.app = Starlette(
            routes=[Route("/v1/spaces/{space}/messages", self._create, methods=["POST"])]
        )

    # ---------------------------------------------------------------- addresses and controls

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, name: str) -> str:
        return next(token for token, hook in self._tokens.items() if hook == name)

    def space(self, name: str) -> str:
        return self._hooks[name]

    def webhook_url(
        self, name: str, *, key: str = API_KEY, token: str | None = None, space: str | None = None
    ) -> str:
        """The URL Google shows for a webhook (`key`, `token`, `space` replace its parts)."""
        token = self.token(name) if token is None else token
        space = self._hooks[name] if space is None else space
        return f"{self.base_url}/v1/spaces/{space}/messages?key={key}&token={token}"

    def _forget(self) -> None:
        self._messages.clear()
        self._threads.clear()
        self._keys.clear()
        self._spaces = set(self._hooks.values())

    def set_rate_limit(self, per_second: int | None) -> None:
        """Answer 429 once more than `per_second` messages reach one space within 1 s."""
        with self._lock:
            self._rate_limit = per_second

    def delete_space(self, space: str) -> None:
        """The space is gone: its webhooks answer 404 NOT_FOUND."""
        with self._lock:
            self._spaces.discard(space)

    @property
    def messages(self) -> list[Message]:
        return self._snapshot(self._messages)

    def messages_in(self, space: str) -> list[Message]:
        return [m for m in self.messages if m.space == space]

    def in_thread(self, thread: str) -> list[Message]:
        return [m for m in self.messages if m.thread == thread]

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[Message]:
        return self._wait_for(lambda: self.messages, count, timeout)

    # ---------------------------------------------------------------- internals

    def _rate_limited(self, space: str, now: float) -> bool:
        with self._lock:
            return self._window_full(space, now, self._rate_limit, 1.0 - RATE_SLACK)

    async def _play(self, step: str, request: Request) -> Response:
        if step.startswith("ratelimited"):
            after = step.partition(":")[2]
            headers = {"Retry-After": after} if after and after != "none" else {}
            return google_json(error_body(429), 429, headers)
        if step.startswith("status:"):
            code = int(step[7:])
            return google_json(error_body(code), code)
        if step.startswith("html:"):
            code = int(step[5:])
            page = f"<html><head><title>Error {code}</title></head><body>{code}.</body></html>"
            return Response(page, status_code=code, media_type="text/html; charset=UTF-8")
        if step == "timeout":
            return await self._hang(request)
        return await self._drop(request)

    async def _create(self, request: Request) -> Response:
        received = time.monotonic()
        space = request.path_params["space"]
        query = dict(request.query_params)
        key, token = query.pop("key", None), query.pop("token", None)
        hook = self._tokens.get(token or "")
        raw = await request.body()
        body: Any = None
        with contextlib.suppress(ValueError):
            body = json.loads(raw)

        def record(status: int | None, error: str | None, step: str | None = None) -> None:
            shown = body if isinstance(body, dict) else None
            self._keep(
                RequestRecord(space, hook, status, error, received, shown, query, len(raw), step)
            )

        step = self._next_step(hook, space)
        if step in ("timeout", "drop_connection"):
            record(None, None, step)  # at once: the client may give up before the fake does
            return await self._play(step, request)
        if step is not None and step != "timeout_after_post":
            response = await self._play(step, request)
            record(response.status_code, STATUS.get(response.status_code), step)
            return response
        status, answer = self._answer(space, key, hook, body, raw, query, received)
        error = answer["error"]["status"] if status != 200 else None
        record(status, error, step)
        if step == "timeout_after_post":
            return await self._hang(request)
        return google_json(answer, status)

    def _answer(
        self,
        space: str,
        key: str | None,
        hook: str | None,
        body: Any,
        raw: bytes,
        query: Mapping[str, str],
        received: float,
    ) -> tuple[int, dict[str, Any]]:
        if key != API_KEY:
            info = {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "chat.googleapis.com"},
            }
            message = "API key not valid. Please pass a valid API key."
            return 400, error_body(400, message, details=[info])
        if not _PATH_SPACE.match(space) or space not in self._spaces:
            return 404, error_body(404)
        if hook is None or self._hooks[hook] != space:
            return 403, error_body(403)
        if body is None:
            return 400, error_body(400, "Invalid JSON payload received. Unexpected token.")
        problem = check_message(body, len(raw))
        if problem is not None:
            return 400, error_body(400, problem)
        if self._rate_limited(space, received):
            return 429, error_body(429)
        option = query.get("messageReplyOption")
        if option is not None and option not in (
            *REPLY_OPTIONS,
            "MESSAGE_REPLY_OPTION_UNSPECIFIED",
        ):
            return 400, error_body(400, f"Invalid value at 'message_reply_option' (\"{option}\")")
        asked = body.get("thread") or {}
        with self._lock:
            self._counter += 1
            n = self._counter
            thread, new = self._thread_for(space, hook, asked, option, n)
            if thread is None:
                return 404, error_body(404)
            name = f"spaces/{space}/messages/{n:06d}.{n:06d}"
            message = Message(
                name=name,
                space=space,
                hook=hook,
                thread=thread,
                new_thread=new,
                thread_key=asked.get("threadKey"),
                reply_option=option,
                text=body.get("text"),
                cards=body.get("cardsV2"),
                received=received,
                body=body,
            )
            self._messages.append(message)
        created = {
            "name": name,
            "sender": {"name": f"users/{100000 + n}", "displayName": hook, "type": "BOT"},
            "createTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
            "text": body.get("text", ""),
            **({"cardsV2": body["cardsV2"]} if body.get("cardsV2") else {}),
            "thread": {"name": thread},
            "space": {"name": f"spaces/{space}", "type": "ROOM", "spaceType": "SPACE"},
            "argumentText": body.get("text", ""),
            "formattedText": body.get("text", ""),
        }
        return 200, created

    def _thread_for(
        self, space: str, hook: str, asked: Mapping[str, Any], option: str | None, n: int
    ) -> tuple[str | None, bool]:
        """Where a message lands (None: REPLY_MESSAGE_OR_FAIL found no thread), and whether it
        started its thread. Called with the lock held."""
        fresh = f"spaces/{space}/threads/T{n:06d}"
        if option not in REPLY_OPTIONS:  # keys and names are ignored: always a new thread
            self._threads[space].add(fresh)
            return fresh, True
        named, key = asked.get("name"), asked.get("threadKey")
        if isinstance(named, str) and named:
            if named in self._threads[space]:
                return named, False
            if option == "REPLY_MESSAGE_OR_FAIL":
                return None, False
        elif isinstance(key, str) and key:
            found = self._keys.get((space, hook, key))
            if found is not None:
                return found, False
            self._keys[(space, hook, key)] = fresh
        self._threads[space].add(fresh)
        return fresh, True
