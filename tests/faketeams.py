"""A fake Microsoft Teams Workflows webhook for tests, served over real HTTP: the trigger of a
flow "When a Teams webhook request is received" followed by "Post card in a chat or channel",
answering with Power Automate's statuses and Logic Apps' error bodies
(`{"error": {"code", "message"}}`; relay/delivery/teams.py says where each comes from).

Flows: `FakeTeams(flows={"alerts": "sig-alerts"})` maps a flow name to its signature. Its URL
comes in both forms Power Automate hands out (`workflow_url(flow)`, or with
`style="powerplatform"`):
    /workflows/{flow}/triggers/manual/paths/invoke?api-version=2016-06-01&sp=...&sv=1.0&sig=...
    /powerautomate/automations/direct/workflows/{flow}/triggers/manual/paths/invoke?...&sig=...

Answers, as the real trigger gives them:
- 202 with an empty body: accepted; the card is recorded as posted (`posts`).
- 404 `WorkflowNotFound`: no such flow.
- 401 `DirectApiAuthorizationRequired` without `sig=`; `DirectApiInvalidAuthorizationSignature`
  with a wrong one.
- 400 `WorkflowTriggerIsNotEnabled`: a flow turned off (`disable`) or deleted (`delete`).
- 400 `InvalidRequestContent`: a body that is not JSON sent as application/json.
- 429 `TooManyRequests` with `Retry-After: 1` past `rate_limit` requests a second per flow.

Stricter than the real trigger, on purpose: Power Automate accepts any JSON with 202 and its
"Post card" step fails afterwards, in the flow's run history, where the sender never sees it.
The fake checks the card at once, so that a test sees what Teams would refuse:
- 413 `RequestEntityTooLarge`: a body over `max_bytes` (27,700: where Teams' rejections of
  "about 28 KB" messages are reported).
- 400 `InvalidAdaptiveCard` (its message lists the problems): no `type: message` envelope or
  `attachments` wrapper, an attachment that is not an Adaptive Card, a card version above 1.4,
  a missing required field, an element or property the fake does not know (it knows the ones
  relay writes: TextBlock, RichTextBlock with TextRuns, Container, ColumnSet with Columns,
  Action.OpenUrl with an http(s) URL), a value outside its enumeration, or a mention entity
  whose `<at>` text is in no TextBlock.
`lint` checks relay's own conventions on top (`wrap: true` on every TextBlock, full width).

Mentions: each accepted post records every `<at>...</at>` in its texts (`AtTag`: the element
it is in, and the entity that pairs with it, if any). Teams pings for a tag in a TextBlock (or
FactSet) paired with an entity (Microsoft's "Format cards in Teams"); `pings` lists those, so a
test can prove that event text never produced one.

Scripted steps (`script(flow, steps)`), consumed one per request to that flow:
    "throttled[:N]"   429, Retry-After N (default 1); "throttled:none" sends no Retry-After
    "http:NNN"        that status with a Logic Apps error body (code `Http<NNN>`)
    "timeout"         no answer until the client gives up (or `hang_seconds`)
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fakeserver import FakeServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_BYTES = 27_700
MAX_VERSION = (1, 4)
_INVOKE = "triggers/manual/paths/invoke"
_STEP = re.compile(r"^(?:throttled(?::(?:\d+|none))?|http:[1-5]\d\d|timeout)$")
_AT = re.compile(r"<\s*at\b[^>]*>(.*?)<\s*/\s*at\s*>", re.IGNORECASE | re.DOTALL)
_URL = re.compile(r"^https?://[^\s]+$")

COLORS = {"default", "dark", "light", "accent", "good", "warning", "attention"}
SIZES = {"default", "small", "medium", "large", "extralarge"}
WEIGHTS = {"default", "lighter", "bolder"}
FONT_TYPES = {"default", "monospace"}
SPACINGS = {"default", "none", "small", "medium", "large", "extralarge", "padding"}
CONTAINER_STYLES = {"default", "emphasis", "good", "attention", "warning", "accent"}
ACTION_STYLES = {"default", "positive", "destructive"}
_COMMON = {"type", "id", "spacing", "separator", "isVisible", "height", "requires", "fallback"}
# the properties the fake knows, per element (what relay writes, and their neighbours)
PROPERTIES = {
    "AdaptiveCard": {"type", "version", "body", "actions", "msteams", "$schema", "fallbackText",
                     "speak", "lang"},
    "TextBlock": _COMMON | {"text", "wrap", "color", "size", "weight", "isSubtle", "fontType",
                            "maxLines", "horizontalAlignment", "style"},
    "RichTextBlock": _COMMON | {"inlines", "horizontalAlignment"},
    "Container": _COMMON | {"items", "style", "bleed", "selectAction",
                            "verticalContentAlignment", "minHeight"},
    "ColumnSet": _COMMON | {"columns", "style", "bleed", "horizontalAlignment", "minHeight",
                            "selectAction"},
    "Column": _COMMON | {"items", "width", "style", "bleed", "minHeight",
                         "verticalContentAlignment", "selectAction"},
    "TextRun": {"type", "text", "color", "size", "weight", "fontType", "isSubtle", "italic",
                "strikethrough", "highlight", "underline", "selectAction"},
    "Action.OpenUrl": {"type", "title", "url", "style", "id", "iconUrl", "tooltip"},
}  # fmt: skip


@dataclass(frozen=True)
class AtTag:
    """One `<at>name</at>` in a posted card: the element it is in and the id of the mention
    entity paired with it (None: it shows as text and pings nobody)."""

    text: str
    element: str
    entity: str | None

    @property
    def pings(self) -> bool:
        return self.entity is not None and self.element in ("TextBlock", "FactSet")


@dataclass(frozen=True)
class Post:
    """A card the flow accepted (and, for real, would post)."""

    flow: str
    payload: dict[str, Any]
    received: float
    at_tags: tuple[AtTag, ...] = ()

    @property
    def card(self) -> dict[str, Any]:
        content: dict[str, Any] = self.payload["attachments"][0]["content"]
        return content

    @property
    def pings(self) -> list[AtTag]:
        return [tag for tag in self.at_tags if tag.pings]


@dataclass(frozen=True)
class RequestRecord:
    """One request and the fake's answer (status None: none, the client gave up). The query
    string (with its `sig=`) is not kept."""

    flow: str | None
    status: int | None
    code: str | None
    received: float
    size: int
    headers: dict[str, str] = field(default_factory=dict)
    scripted: str | None = None


def error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    body = json.dumps({"error": {"code": code, "message": message}})
    return Response(
        body,
        status_code=status,
        media_type="application/json; charset=utf-8",
        headers=dict(headers or {}),
    )


# ---------------------------------------------------------------- the card checks


class CardChecker:
    """What Teams would refuse in a Workflows payload, as readable problems with their path."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.block_texts: list[str] = []

    def problem(self, path: str, what: str) -> None:
        self.problems.append(f"{path}: {what}")

    def check(self, payload: Any) -> list[str]:
        if not isinstance(payload, dict):
            self.problem("", "the body must be a JSON object")
            return self.problems
        if payload.get("type") != "message":
            self.problem("/type", "must be 'message'")
        attachments = payload.get("attachments")
        if not isinstance(attachments, list) or not attachments:
            self.problem("/attachments", "required: a list of attachments")
            return self.problems
        for i, attachment in enumerate(attachments):
            path = f"/attachments/{i}"
            if not isinstance(attachment, dict):
                self.problem(path, "must be an object")
                continue
            if attachment.get("contentType") != CONTENT_TYPE:
                self.problem(f"{path}/contentType", f"must be '{CONTENT_TYPE}'")
            self.card(attachment.get("content"), f"{path}/content")
        return self.problems

    def card(self, card: Any, path: str) -> None:
        if not isinstance(card, dict):
            self.problem(path, "required: the Adaptive Card")
            return
        if card.get("type") != "AdaptiveCard":
            self.problem(f"{path}/type", "must be 'AdaptiveCard'")
        self.version(card.get("version"), f"{path}/version")
        self.known(card, PROPERTIES["AdaptiveCard"], path)
        body = card.get("body")
        if not isinstance(body, list):
            self.problem(f"{path}/body", "required: a list of elements")
        else:
            for i, element in enumerate(body):
                self.element(element, f"{path}/body/{i}")
        actions = card.get("actions", [])
        if not isinstance(actions, list):
            self.problem(f"{path}/actions", "must be a list")
        else:
            for i, action in enumerate(actions):
                self.action(action, f"{path}/actions/{i}")
        self.msteams(card.get("msteams"), f"{path}/msteams")

    def version(self, value: Any, path: str) -> None:
        found = re.match(r"^(\d+)\.(\d+)$", value) if isinstance(value, str) else None
        if found is None:
            self.problem(path, "required: a version such as '1.4'")
        elif (int(found.group(1)), int(found.group(2))) > MAX_VERSION:
            self.problem(path, "above 1.4: Power Automate shows 'this card couldn't be displayed'")

    def known(self, obj: dict[str, Any], allowed: set[str], path: str) -> None:
        for key in obj:
            if key not in allowed:
                self.problem(f"{path}/{key}", "unknown property")

    def enum(self, obj: dict[str, Any], key: str, values: set[str], path: str) -> None:
        if key in obj and (not isinstance(obj[key], str) or obj[key].lower() not in values):
            self.problem(f"{path}/{key}", f"must be one of {sorted(values)}")

    def boolean(self, obj: dict[str, Any], key: str, path: str) -> None:
        if key in obj and not isinstance(obj[key], bool):
            self.problem(f"{path}/{key}", "must be true or false")

    def element(self, element: Any, path: str) -> None:
        if not isinstance(element, dict) or not isinstance(element.get("type"), str):
            self.problem(path, "must be an element with a type")
            return
        kind = element["type"]
        self.enum(element, "spacing", SPACINGS, path)
        self.boolean(element, "separator", path)
        if kind == "TextBlock":
            self.known(element, PROPERTIES["TextBlock"], path)
            if not isinstance(element.get("text"), str):
                self.problem(f"{path}/text", "required: a string")
            else:
                self.block_texts.append(element["text"])
            self.boolean(element, "wrap", path)
            self.text_style(element, path)
        elif kind == "RichTextBlock":
            self.known(element, PROPERTIES["RichTextBlock"], path)
            inlines = element.get("inlines")
            if not isinstance(inlines, list) or not inlines:
                self.problem(f"{path}/inlines", "required: a list of TextRuns")
                return
            for i, run in enumerate(inlines):
                self.text_run(run, f"{path}/inlines/{i}")
        elif kind == "Container":
            self.known(element, PROPERTIES["Container"], path)
            self.enum(element, "style", CONTAINER_STYLES, path)
            self.boolean(element, "bleed", path)
            self.items(element, "items", path)
        elif kind == "ColumnSet":
            self.known(element, PROPERTIES["ColumnSet"], path)
            columns = element.get("columns")
            if not isinstance(columns, list):
                self.problem(f"{path}/columns", "required: a list of Columns")
                return
            for i, column in enumerate(columns):
                self.column(column, f"{path}/columns/{i}")
        else:
            self.problem(f"{path}/type", f"unknown element type '{kind}'")

    def column(self, column: Any, path: str) -> None:
        if not isinstance(column, dict) or column.get("type") != "Column":
            self.problem(path, "must be a Column")
            return
        self.known(column, PROPERTIES["Column"], path)
        width = column.get("width", "auto")
        if not (isinstance(width, int | float) or (isinstance(width, str) and width)):
            self.problem(f"{path}/width", "must be auto, stretch, a weight or pixels")
        self.items(column, "items", path)

    def items(self, element: dict[str, Any], key: str, path: str) -> None:
        items = element.get(key)
        if not isinstance(items, list):
            self.problem(f"{path}/{key}", "required: a list of elements")
            return
        for i, item in enumerate(items):
            self.element(item, f"{path}/{key}/{i}")

    def text_style(self, obj: dict[str, Any], path: str) -> None:
        self.enum(obj, "color", COLORS, path)
        self.enum(obj, "size", SIZES, path)
        self.enum(obj, "weight", WEIGHTS, path)
        self.enum(obj, "fontType", FONT_TYPES, path)
        self.boolean(obj, "isSubtle", path)

    def text_run(self, run: Any, path: str) -> None:
        if isinstance(run, str):
            return
        if not isinstance(run, dict) or run.get("type") != "TextRun":
            self.problem(path, "must be a TextRun")
            return
        self.known(run, PROPERTIES["TextRun"], path)
        if not isinstance(run.get("text"), str):
            self.problem(f"{path}/text", "required: a string")
        self.text_style(run, path)
        for key in ("italic", "strikethrough", "highlight", "underline"):
            self.boolean(run, key, path)
        if "selectAction" in run:
            self.action(run["selectAction"], f"{path}/selectAction", titled=False)

    def action(self, action: Any, path: str, *, titled: bool = True) -> None:
        if not isinstance(action, dict) or action.get("type") != "Action.OpenUrl":
            self.problem(path, "must be an Action.OpenUrl")
            return
        self.known(action, PROPERTIES["Action.OpenUrl"], path)
        url = action.get("url")
        if not isinstance(url, str) or not _URL.match(url):
            self.problem(f"{path}/url", "required: an http(s) URL")
        if titled and not isinstance(action.get("title"), str):
            self.problem(f"{path}/title", "required: a string")
        self.enum(action, "style", ACTION_STYLES, path)

    def msteams(self, msteams: Any, path: str) -> None:
        if msteams is None:
            return
        if not isinstance(msteams, dict):
            self.problem(path, "must be an object")
            return
        self.known(msteams, {"width", "entities"}, path)
        if "width" in msteams and msteams["width"] != "Full":
            self.problem(f"{path}/width", "must be 'Full'")
        entities = msteams.get("entities", [])
        if not isinstance(entities, list):
            self.problem(f"{path}/entities", "must be a list")
            return
        for i, entity in enumerate(entities):
            where = f"{path}/entities/{i}"
            if not isinstance(entity, dict) or entity.get("type") != "mention":
                self.problem(where, "must be a mention entity")
                continue
            text, mentioned = entity.get("text"), entity.get("mentioned")
            if not isinstance(text, str) or not _AT.fullmatch(text):
                self.problem(f"{where}/text", "required: <at>name</at>")
            elif not any(text in shown for shown in self.block_texts):
                self.problem(f"{where}/text", "is in no TextBlock of the card")
            if not (
                isinstance(mentioned, dict)
                and isinstance(mentioned.get("id"), str)
                and mentioned["id"]
                and isinstance(mentioned.get("name"), str)
            ):
                self.problem(f"{where}/mentioned", "required: {id, name}")


def check(payload: Any) -> list[str]:
    """The problems Teams would have with a Workflows payload (none: it takes it)."""
    return CardChecker().check(payload)


def lint(payload: Any) -> list[str]:
    """relay's own rules for its cards: every TextBlock wraps, every card is full width."""
    problems = []
    for node in _nodes(payload):
        if node.get("type") == "TextBlock" and node.get("wrap") is not True:
            problems.append("a TextBlock without wrap: true")
        if node.get("type") == "AdaptiveCard" and node.get("msteams", {}).get("width") != "Full":
            problems.append("a card that is not full width")
    return problems


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    """Every object in a JSON value, in document order."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _nodes(item)
    elif isinstance(value, list):
        for item in value:
            yield from _nodes(item)


def at_tags(payload: dict[str, Any]) -> tuple[AtTag, ...]:
    """Every `<at>...</at>` in the card's texts, with the entity that pairs with it."""
    card = payload["attachments"][0]["content"]
    entities = {
        e.get("text"): (e.get("mentioned") or {}).get("id")
        for e in (card.get("msteams") or {}).get("entities", [])
        if isinstance(e, dict)
    }
    found: list[AtTag] = []
    for node in _nodes(card.get("body", [])):
        kind = str(node.get("type"))
        texts = [node.get("text")]
        if kind == "FactSet":
            texts = [t for f in node.get("facts", []) for t in (f.get("title"), f.get("value"))]
        for text in texts:
            if isinstance(text, str):
                for tag in _AT.finditer(text):
                    found.append(AtTag(tag.group(0), kind, entities.get(tag.group(0))))
    return tuple(found)


# ---------------------------------------------------------------- the server


class FakeTeams(FakeServer[RequestRecord]):
    """The fake Workflows webhooks. Use as a context manager or call start()/stop()."""

    STEP = _STEP

    def __init__(
        self,
        *,
        flows: Mapping[str, str] | None = None,
        port: int = 0,
        rate_limit: int | None = None,
        max_bytes: int = MAX_BYTES,
        hang_seconds: float = 35.0,
    ) -> None:
        super().__init__(port=port, hang_seconds=hang_seconds)
        self._flows = dict(flows or {"alerts": "sig-alerts", "events": "sig-events"})
        self._state: dict[str, str] = {}  # flow -> "Disabled" | "Deleted"
        self.rate_limit = rate_limit
        self.max_bytes = max_bytes
        self._posts: list[Post] = []
        self.app = Starlette(
            routes=[
                Route(f"/workflows/{{flow}}/{_INVOKE}", self._invoke, methods=["POST"]),
                Route(
                    f"/powerautomate/automations/direct/workflows/{{flow}}/{_INVOKE}",
                    self._invoke,
                    methods=["POST"],
                ),
            ]
        )

    # ---------------------------------------------------------------- addresses and controls

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workflow_url(self, flow: str, *, sig: str | None = None, style: str = "logic") -> str:
        """The flow's trigger URL (`sig` given: that signature, "" for none)."""
        signature = self._flows.get(flow, "sig-unknown") if sig is None else sig
        query = "sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0" + (f"&sig={signature}" if signature else "")
        if style == "powerplatform":
            path = f"/powerautomate/automations/direct/workflows/{flow}/{_INVOKE}"
            return f"{self.url}{path}?api-version=1&{query}"
        return f"{self.url}/workflows/{flow}/{_INVOKE}?api-version=2016-06-01&{query}"

    def disable(self, flow: str) -> None:
        """The flow is turned off."""
        with self._lock:
            self._state[flow] = "Disabled"

    def delete(self, flow: str) -> None:
        """The flow is deleted (its URL answers as a deleted trigger)."""
        with self._lock:
            self._state[flow] = "Deleted"

    def _forget(self) -> None:
        self._posts.clear()
        self._state.clear()

    @property
    def posts(self) -> list[Post]:
        return self._snapshot(self._posts)

    def posts_to(self, flow: str) -> list[Post]:
        return [p for p in self.posts if p.flow == flow]

    def wait_for_posts(self, count: int, timeout: float = 10.0) -> list[Post]:
        return self._wait_for(lambda: self.posts, count, timeout)

    # ---------------------------------------------------------------- the trigger

    async def _invoke(self, request: Request) -> Response:
        received = time.monotonic()
        flow = request.path_params["flow"]
        raw = await request.body()
        headers = {k: v for k, v in request.headers.items()}
        step = self._next_step(flow)
        if step is not None:
            response = await self._play(step, request)
            status = None if step == "timeout" else response.status_code
            self._record(flow, status, None, received, raw, headers, step)
            return response
        response, code, payload = self._answer(flow, request, raw, received)
        self._record(flow, response.status_code, code, received, raw, headers)
        if payload is not None:
            with self._lock:
                self._posts.append(Post(flow, payload, received, at_tags(payload)))
        return response

    def _answer(
        self, flow: str, request: Request, raw: bytes, received: float
    ) -> tuple[Response, str | None, dict[str, Any] | None]:
        if flow not in self._flows:
            message = f"The workflow '{flow}' could not be found."
            return error(404, "WorkflowNotFound", message), "WorkflowNotFound", None
        sig = request.query_params.get("sig")
        if not sig:
            code = "DirectApiAuthorizationRequired"
            message = "The request must be authenticated only by Shared Access scheme."
            return error(401, code, message), code, None
        if sig != self._flows[flow]:
            code = "DirectApiInvalidAuthorizationSignature"
            message = "The provided authorization signature is not valid."
            return error(401, code, message), code, None
        with self._lock:
            state = self._state.get(flow)
        if state is not None:
            code = "WorkflowTriggerIsNotEnabled"
            message = (
                f"Could not execute workflow '{flow}' trigger 'manual' with state '{state}':"
                " trigger is not enabled."
            )
            return error(400, code, message), code, None
        if self._throttled(flow, received):
            code = "TooManyRequests"
            message = "Rate limit is exceeded. Try again in 1 seconds."
            return error(429, code, message, {"Retry-After": "1"}), code, None
        if len(raw) > self.max_bytes:
            code = "RequestEntityTooLarge"
            message = f"The request body is {len(raw)} bytes: over Teams' limit for a message."
            return error(413, code, message), code, None
        try:
            if not request.headers.get("content-type", "").startswith("application/json"):
                raise ValueError("not JSON")
            payload = json.loads(raw)
        except ValueError:
            code = "InvalidRequestContent"
            message = "The request content is not valid JSON."
            return error(400, code, message), code, None
        problems = check(payload)
        if problems:
            return (
                error(400, "InvalidAdaptiveCard", "; ".join(problems)),
                "InvalidAdaptiveCard",
                None,
            )
        return Response(status_code=202), None, payload

    def _throttled(self, flow: str, now: float) -> bool:
        with self._lock:
            return self._window_full(flow, now, self.rate_limit)

    async def _play(self, step: str, request: Request) -> Response:
        if step.startswith("throttled"):
            after = step.partition(":")[2] or "1"
            headers = {} if after == "none" else {"Retry-After": after}
            return error(429, "TooManyRequests", "Rate limit is exceeded.", headers)
        if step.startswith("http:"):
            status = int(step[5:])
            return error(status, f"Http{status}", "The server had an error.")
        await self._linger(request)
        return Response(status_code=504)

    def _record(
        self,
        flow: str | None,
        status: int | None,
        code: str | None,
        received: float,
        raw: bytes,
        headers: Mapping[str, str],
        scripted: str | None = None,
    ) -> None:
        self._keep(RequestRecord(flow, status, code, received, len(raw), dict(headers), scripted))
