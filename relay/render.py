"""The render stage: an Event -> a Slack message ({text, blocks}) via a sandboxed Jinja template.

Templates (built-ins in `relay/templates/`, overridden by name from the user's folder) render a
JSON document `{"text": ..., "blocks": [...]}`. Safety does not depend on the template author:

* every `{{ value }}` is escaped for mrkdwn (`&`, `<`, `>`) and for a JSON string literal by the
  environment's `finalize` hook; values that are already `Markup` (macro output, `link`,
  `slack_date`, `plain`, ...) pass through;
* `~` joins and the `join` filter escape their plain parts the same way (Jinja's defaults would
  HTML-escape them, which breaks JSON and lets `\\u003c` through);
* after parsing, every mrkdwn text is passed through `mrkdwn.neutralize`: a control sequence that
  the renderer's own filters did not produce in this render is shown as text;
* `blockkit.fit` enforces Slack's limits.

A `Renderer` reads its templates (the user's folder and the built-ins) into memory once, when
it is built: a template edit takes effect with the next reload, never half-way through, and a
renderer kept for events accepted before a reload renders them as they were.

`Renderer.render` never raises: when a template is missing, fails, or produces something that is
not a fixable message, it returns a safe default message built in plain Python and says why in
`error`.

Render context (flat): `event`, `data`, `source`, `provider`, `id`, `type`, `entity`, `action`
(the type after the entity: `failed` for `task_run.failed`), `text` (the provider's one-liner),
`created` (aware datetime or None), `envelope`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import (
    DictLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
)
from jinja2 import nodes as jinja_nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from relay import humanize, mrkdwn
from relay.blockkit import fit
from relay.event import Event, dig, parse_time

BUILTIN_DIR = Path(__file__).parent / "templates"
FALLBACK = "<fallback>"
SUFFIX = ".j2"

_STYLES = ("primary", "danger")
_MENTION_TYPES = frozenset({"broadcast", "user", "usergroup", "channel"})
_ALLOWED: ContextVar[set[str] | None] = ContextVar("relay_allowed_sequences", default=None)
# set while rendering a message whose ids must read in full (a digest line lists many events,
# and ids that differ only where `short_id` cuts would read as identical lines)
_FULL_IDS: ContextVar[bool] = ContextVar("relay_full_ids", default=False)


@dataclass(frozen=True)
class RenderedMessage:
    text: str
    blocks: list[dict[str, Any]]
    template: str
    error: str | None = None


class TemplateOutputError(ValueError):
    """A template rendered something that is not a message document."""


# --- escaping ------------------------------------------------------------------------------


def to_text(value: Any) -> str:
    """How a value reads in a message: None is empty, bools are `true`/`false`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class SlackText(Markup):
    """Markup holding text that is already mrkdwn-escaped and escaped for a JSON string.

    Its `escape` (used by `+`, `%`, `.join` and `.format`) escapes plain strings the Slack way
    instead of the HTML way.
    """

    __slots__ = ()

    @classmethod
    def escape(cls, s: Any) -> SlackText:
        if hasattr(s, "__html__"):
            return cls(s.__html__())
        return cls(mrkdwn_json(to_text(s)))


def json_escape(text: str) -> str:
    """The inside of a JSON string literal for `text`."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def mrkdwn_json(text: str) -> str:
    return json_escape(mrkdwn.escape(text))


def _unjson(value: Any) -> str:
    """The text a Markup value stands for (undoing the JSON string escaping)."""
    text = str(value)
    try:
        decoded = json.loads(f'"{text}"')
    except ValueError:
        return text
    return decoded if isinstance(decoded, str) else text


def _raw(value: Any) -> str:
    """What a value shows as, without any escaping (Markup is decoded, entities undone)."""
    if hasattr(value, "__html__"):
        return _unjson(value).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return to_text(value)


def _finalize(value: Any) -> Any:
    if hasattr(value, "__html__"):
        return value
    return SlackText.escape(value)


def _allow(token: str) -> str:
    allowed = _ALLOWED.get()
    if allowed is not None:
        allowed.add(token)
    return token


# --- filters and globals -------------------------------------------------------------------


def f_link(url: Any, label: Any = None) -> SlackText:
    """`<url|label>` for an http(s) URL; only the escaped label when the URL is unsafe."""
    text = mrkdwn.link(url, _raw(label) if label is not None else None)
    if text.startswith("<"):
        _allow(text)
    return SlackText(json_escape(text))


def f_plain(value: Any, limit: int | None = None) -> SlackText:
    """For plain_text objects: JSON-escaped only (Slack does not parse plain_text)."""
    text = _raw(value)
    if limit is not None:
        text = mrkdwn.truncate(text, limit)
    return SlackText(json_escape(text))


def f_clip(value: Any, limit: int = 300) -> Any:
    """At most `limit` characters, cut with `…`; Markup is cut without breaking a sequence."""
    if hasattr(value, "__html__"):
        return SlackText(json_escape(mrkdwn.truncate_mrkdwn(_unjson(value), limit)))
    return mrkdwn.truncate(to_text(value), limit)


def f_slack_date(value: Any, fmt: str = "{date_short_pretty} {time}") -> SlackText:
    """A date shown in each reader's time zone; "" when the value is not a time."""
    when = value if isinstance(value, datetime) else parse_time(value)
    if when is None:
        return SlackText("")
    return SlackText(json_escape(_allow(mrkdwn.date_token(when, fmt))))


def f_quote(value: Any, limit: int = 1500) -> SlackText:
    """A mrkdwn block quote of the value (each line prefixed with `>`)."""
    text = mrkdwn.truncate(_raw(value).strip(), limit)
    if not text:
        return SlackText("")
    lines = [">" + mrkdwn.escape(line) for line in text.splitlines()]
    return SlackText(json_escape("\n".join(lines)))


def f_code(value: Any, limit: int = 80) -> str:
    """Inline code `value` (backticks inside replaced); "" when empty."""
    text = mrkdwn.truncate(_raw(value).strip().replace("`", "\u02cb"), limit)
    return f"`{text}`" if text else ""


def f_tojson_block(value: Any, limit: int = 2500) -> SlackText:
    """Pretty JSON (or the text itself) for inside a code block, cut to `limit`."""
    if value is None or value == "" or value == [] or value == {}:
        return SlackText("")
    if isinstance(value, str):
        text = value
        try:
            decoded = json.loads(value)
            if isinstance(decoded, dict | list):
                text = json.dumps(decoded, indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):
            pass
    else:
        try:
            text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        except (ValueError, TypeError, RecursionError):
            text = "(too deeply nested to show)"
    # A ``` inside the value would end the code block early.
    text = mrkdwn.truncate(text, limit).replace("```", "``\u200b`")
    return SlackText(mrkdwn_json(text))


def f_safe_url(value: Any) -> str:
    return mrkdwn.safe_url(value) or ""


def f_count(value: Any) -> int | None:
    """How many: the length of a list or mapping, an int as it is; None otherwise."""
    if isinstance(value, list | tuple | Mapping):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _empty(value: Any) -> bool:
    if value is None:
        return True
    return isinstance(value, str | list | tuple | Mapping) and len(value) == 0


def f_first(*values: Any) -> Any:
    """The first value that is not None or empty (0 and false count as values)."""
    for value in values:
        if not _empty(value):
            return value
    return None


def f_as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def f_as_dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def f_text(value: Any) -> str:
    """A scalar as text; "" for containers (so a wrong-typed field shows nothing)."""
    if isinstance(value, Mapping | list | tuple):
        return ""
    return to_text(value)


_STATUS_EMOJI = {
    "success": ":white_check_mark:",
    "failure": ":x:",
    "warning": ":warning:",
    "waiting": ":raising_hand:",
    "attention": ":rotating_light:",
    "info": ":information_source:",
    "started": ":arrow_forward:",
    "running": ":arrows_counterclockwise:",
    "queued": ":hourglass_flowing_sand:",
    "stopping": ":double_vertical_bar:",
    "cancelled": ":no_entry_sign:",
    "created": ":sparkles:",
    "updated": ":pencil2:",
    "deleted": ":wastebasket:",
    "healed": ":adhesive_bandage:",
    "recording": ":movie_camera:",
    "idle": ":zzz:",
    "key": ":key:",
    "file": ":page_facing_up:",
}


def f_status_emoji(status: Any) -> str:
    return _STATUS_EMOJI.get(to_text(status), ":information_source:")


def f_field_list(fields: Any) -> list[tuple[Any, Any]]:
    """`[(label, value), {label, value}, ...]` -> pairs whose value is not empty."""
    out: list[tuple[Any, Any]] = []
    for item in fields if isinstance(fields, list | tuple) else []:
        if isinstance(item, Mapping):
            label, value = item.get("label"), item.get("value")
        elif isinstance(item, list | tuple) and len(item) == 2:
            label, value = item
        else:
            continue
        if _empty(value) or (hasattr(value, "__html__") and not str(value)):
            continue
        if isinstance(value, list | tuple):
            value = ", ".join(to_text(v) for v in value[:20] if not isinstance(v, Mapping | list))
        elif isinstance(value, Mapping):
            value = json.dumps(value, ensure_ascii=False, default=str)
        if value == "":
            continue
        out.append((label, value))
    return out


def f_button_list(buttons: Any) -> list[dict[str, str]]:
    """`[(label, url[, style]), {text, url, style}]` -> buttons with safe, distinct URLs."""
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for item in buttons if isinstance(buttons, list | tuple) else []:
        if isinstance(item, Mapping):
            label, url, style = item.get("text"), item.get("url"), item.get("style")
        elif isinstance(item, list | tuple) and len(item) in (2, 3):
            label, url, style = item[0], item[1], item[2] if len(item) == 3 else None
        else:
            continue
        safe = mrkdwn.safe_url(url)
        text = _raw(label).strip()
        if safe is None or safe in seen or not text:
            continue
        seen.add(safe)
        out.append({"text": text, "url": safe, "style": style if style in _STYLES else ""})
    return out[:25]


def _error_items(value: Any, depth: int = 0) -> Iterator[dict[str, str]]:
    if _empty(value) or depth > 3:
        return
    if isinstance(value, list | tuple):
        for item in value:
            yield from _error_items(item, depth + 1)
    elif isinstance(value, Mapping):
        message = f_first(
            *(value.get(k) for k in ("message", "detail", "description", "reason", "error"))
        )
        if isinstance(message, Mapping | list):
            message = json.dumps(message, ensure_ascii=False, default=str)[:500]
        item = {
            "type": f_text(f_first(value.get("type"), value.get("kind"), value.get("name"))),
            "code": f_text(value.get("code")),
            "message": f_text(message),
            "field": f_text(value.get("field")),
        }
        if any(item.values()):
            yield item
    else:
        yield {"type": "", "code": "", "message": to_text(value), "field": ""}


def f_error_list(value: Any) -> list[dict[str, str]]:
    """Errors in any shape (string, `{type, code, message, field}`, a list) -> uniform dicts."""
    return list(_error_items(value))


def f_error_text(value: Any, limit: int = 5) -> SlackText:
    """The errors as mrkdwn: type and code in bold/code, then the message quoted."""
    errors = f_error_list(value)
    parts: list[str] = []
    for err in errors[:limit]:
        head = [f"*{mrkdwn.escape(humanize.words(err['type']) or 'Error')}*"]
        if err["code"]:
            head.append(mrkdwn.escape(f_code(err["code"])))
        if err["field"]:
            head.append("field " + mrkdwn.escape(f_code(err["field"])))
        lines = [":rotating_light: " + " · ".join(head)]
        message = mrkdwn.truncate(err["message"].strip(), 1000)
        lines += [">" + mrkdwn.escape(line) for line in message.splitlines() if line.strip()]
        parts.append("\n".join(lines))
    if len(errors) > limit:
        parts.append(f"_…and {len(errors) - limit} more_")
    return SlackText(json_escape("\n".join(parts)))


def f_short_id(value: Any, length: int = humanize.SHORT_ID_WHOLE) -> str:
    """`humanize.short_id`, or the whole id while rendering with `full_ids`."""
    if _FULL_IDS.get():
        return humanize.id_text(value)
    return humanize.short_id(value, length)


def f_context_text(extra: Any, event: Any) -> SlackText:
    """The context line: the template's items, then source · short event id · event time."""
    parts: list[str] = []
    for item in extra if isinstance(extra, list | tuple) else []:
        if not _empty(item) and str(item):
            parts.append(str(item) if hasattr(item, "__html__") else SlackText.escape(item))
    if isinstance(event, Event):
        parts.append(mrkdwn_json(event.source))
        short = f_short_id(event.id)
        if short:
            parts.append(mrkdwn_json(f_code(short)))
        date = f_slack_date(event.created)
        if date:
            parts.append(str(date))
    return SlackText(" · ".join(parts))


def f_pairs(items: Any) -> list[tuple[Any, Any]]:
    """`[(title, value), ...]` with empty values left out (for details code blocks)."""
    out: list[tuple[Any, Any]] = []
    for item in items if isinstance(items, list | tuple) else []:
        if isinstance(item, list | tuple) and len(item) == 2 and not _empty(item[1]):
            out.append((item[0], item[1]))
    return out


def f_join(value: Any, d: Any = "", attribute: Any = None) -> Any:
    """Jinja's `join`, escaping plain items the Slack way when any item is Markup."""
    items = [dig(v, str(attribute)) if attribute is not None else v for v in value]
    if any(hasattr(v, "__html__") for v in [*items, d]):
        sep = d if hasattr(d, "__html__") else SlackText.escape(d)
        return SlackText(sep).join(items)
    return to_text(d).join(to_text(v) for v in items)


def _deep_escape(value: Any) -> Any:
    if isinstance(value, str):
        return mrkdwn.escape(value)
    if isinstance(value, Mapping):
        return {mrkdwn.escape(str(k)): _deep_escape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_deep_escape(v) for v in value]
    return value


def f_tojson(value: Any) -> Markup:
    """A JSON value whose strings are mrkdwn-escaped (for `"text": {{ x|tojson }}`)."""
    return Markup(json.dumps(_deep_escape(value), ensure_ascii=False, default=str))


def f_safe(value: Any) -> Any:
    raise TemplateOutputError(
        "the 'safe' filter is disabled: event data is always escaped; use link(), plain or "
        "write the mrkdwn in the template itself"
    )


def f_concat(parts: Iterable[Any]) -> Any:
    """`a ~ b`: plain text stays plain; with any Markup part the plain parts are escaped."""
    items = list(parts)
    if any(hasattr(v, "__html__") for v in items):
        return SlackText("").join(items)
    return "".join(to_text(v) for v in items)


FILTERS: dict[str, Any] = {
    "link": f_link,
    "plain": f_plain,
    "clip": f_clip,
    "slack_date": f_slack_date,
    "quote": f_quote,
    "code": f_code,
    "tojson_block": f_tojson_block,
    "safe_url": f_safe_url,
    "count": f_count,
    "first": f_first,
    "as_list": f_as_list,
    "as_dict": f_as_dict,
    "text": f_text,
    "dig": dig,
    "duration": humanize.duration,
    "bytes": humanize.filesize,
    "money": humanize.money,
    "short_id": f_short_id,
    "words": humanize.words,
    "number": humanize.number,
    "plural": humanize.plural,
    "percent": humanize.percent,
    "bar": humanize.bar,
    "between": humanize.between,
    "status_emoji": f_status_emoji,
    "error_list": f_error_list,
    "error_text": f_error_text,
    "field_list": f_field_list,
    "button_list": f_button_list,
    "context_text": f_context_text,
    "pairs": f_pairs,
    "join": f_join,
    "tojson": f_tojson,
    "safe": f_safe,
}


# --- the environment -----------------------------------------------------------------------


class _SlackCodeGenerator(CodeGenerator):
    """Compiles `~` to the Slack-escaping join instead of Jinja's HTML-escaping one."""

    def visit_Concat(self, node: jinja_nodes.Concat, frame: Frame) -> None:
        self.write("environment.relay_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _SlackEnvironment(ImmutableSandboxedEnvironment):
    code_generator_class = _SlackCodeGenerator
    relay_concat = staticmethod(f_concat)


def read_templates(folder: Path | None) -> dict[str, str]:
    """Every template file of `folder` by its name relative to it (`anchor/task.failed.j2`)."""
    found: dict[str, str] = {}
    if folder is None or not folder.is_dir():
        return found
    for path in sorted(folder.rglob("*" + SUFFIX)):
        if path.is_file():
            name = path.relative_to(folder).as_posix()
            found[name] = path.read_text(encoding="utf-8", errors="replace")
    return found


def _environment(sources: Mapping[str, str]) -> _SlackEnvironment:
    env = _SlackEnvironment(
        loader=DictLoader(dict(sources)),
        undefined=StrictUndefined,
        autoescape=True,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # a template edit applies on reload, which builds a new renderer
        extensions=["jinja2.ext.loopcontrols"],
    )
    env.filters.update(FILTERS)
    env.globals.update(FILTERS)
    return env


# --- the renderer --------------------------------------------------------------------------


def candidates(event: Event) -> list[str]:
    """Template names to try, most specific first (`source` before `provider`)."""
    names: list[str] = []
    for source in dict.fromkeys([event.source, event.provider]):
        for name in (f"{source}/{event.type}", f"{source}/{event.entity}.*", f"{source}/default"):
            if name not in names:
                names.append(name)
    names.append("default")
    return names


def _action(event: Event) -> str:
    rest = event.type[len(event.entity) :]
    return rest[1:] if rest else ""


def context_of(event: Event) -> dict[str, Any]:
    return {
        "event": event,
        "data": event.data if isinstance(event.data, Mapping) else {},
        "source": event.source,
        "provider": event.provider,
        "id": event.id,
        "type": event.type,
        "entity": event.entity,
        "action": _action(event),
        "text": event.text,
        "created": event.created,
        "envelope": event.envelope,
    }


class Renderer:
    """Renders events with the user's templates first, then the built-ins."""

    def __init__(self, user_dir: Path | None = None) -> None:
        self.user_dir = user_dir
        self._user = read_templates(user_dir)
        self._sources = {**_builtins(), **self._user}  # the user's win by name
        self._env = _environment(self._sources)
        # Only built-in templates in play (no user template, no override of a partial): their
        # output is pinned by golden files and Slack-checked in tests, so slack-sdk's model
        # check, half the cost of a render, is only a second opinion on user templates.
        self.builtin_only = not self._user

    def _exists(self, name: str) -> bool:
        return name + SUFFIX in self._sources

    def resolve(self, event: Event, template: str | None = None) -> str:
        """The name of the template `render` would use, or `<fallback>` if there is none."""
        if template and self._exists(_strip_suffix(template)):
            return _strip_suffix(template)
        for name in candidates(event):
            if self._exists(name):
                return name
        return FALLBACK

    def render(
        self,
        event: Event,
        *,
        template: str | None = None,
        mention: str | None = None,
        full_ids: bool = False,
    ) -> RenderedMessage:
        """The message for `event`; `full_ids`: the `short_id` filter shows ids whole."""
        name = FALLBACK
        try:
            name = self.resolve(event, template)
            if name == FALLBACK:
                raise TemplateNotFound(template or candidates(event)[0])
            token = _FULL_IDS.set(full_ids)
            try:
                message = self._render(name, event)
            finally:
                _FULL_IDS.reset(token)
            problem = None
            if template and name != _strip_suffix(template):
                problem = f"template '{template}' not found; used '{name}'"
            final = _with_mention(message, mention)
            return RenderedMessage(final["text"], final["blocks"], name, problem)
        except Exception as exc:
            return safe_default(event, mention, f"{name}: {_describe(exc)}")

    def _render(self, name: str, event: Event) -> dict[str, Any]:
        allowed: set[str] = set()
        token = _ALLOWED.set(allowed)
        try:
            output = self._env.get_template(name + SUFFIX).render(context_of(event))
        finally:
            _ALLOWED.reset(token)
        try:
            document = json.loads(output)
        except ValueError as exc:
            pos = getattr(exc, "pos", 0) or 0
            near = output[max(0, pos - 60) : pos + 20].replace("\n", " ")
            raise TemplateOutputError(f"output is not valid JSON ({exc}); near: {near!r}") from exc
        if not isinstance(document, dict):
            raise TemplateOutputError("output must be a JSON object with 'text' and 'blocks'")
        return fit(sanitize(document, allowed), sdk_check=not self.builtin_only)

    def warm(self) -> None:
        """Compile every template now rather than at its first event (one that does not
        compile falls back when used, as ever)."""
        self.compile_problems()

    def check(self, events: Iterable[Event]) -> list[str]:
        """Problems: templates that do not compile, and sample events that fall back."""
        problems = self.compile_problems()
        for event in events:
            rendered = self.render(event)
            if rendered.error:
                problems.append(f"{event.source} {event.type} ({event.id}): {rendered.error}")
        return problems

    def compile_problems(self, *, user_only: bool = False) -> list[str]:
        """Templates that do not compile (only those of the user's folder with `user_only`)."""
        problems: list[str] = []
        for name in self._template_files(user_only=user_only):
            try:
                self._env.get_template(name)
            except TemplateSyntaxError as exc:
                problems.append(f"template {name}: line {exc.lineno}: {exc.message}")
            except Exception as exc:
                problems.append(f"template {name}: {_describe(exc)}")
        return problems

    def _template_files(self, *, user_only: bool = False) -> list[str]:
        return sorted(self._user if user_only else self._sources)


@functools.cache
def _builtins() -> dict[str, str]:
    return read_templates(BUILTIN_DIR)


def _strip_suffix(name: str) -> str:
    return name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TemplateSyntaxError):
        return f"syntax error at {exc.name or ''} line {exc.lineno}: {exc.message}"
    if isinstance(exc, TemplateNotFound):
        return f"template not found: {exc.name}"
    return f"{type(exc).__name__}: {exc}"


# --- after rendering -----------------------------------------------------------------------


def sanitize(document: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    """Neutralize control sequences the renderer did not make, in every mrkdwn text."""
    out = _sanitize(document, allowed)
    text = document.get("text")
    if isinstance(text, str):
        out["text"] = mrkdwn.neutralize(text, allowed)
    return dict(out)


def _sanitize(value: Any, allowed: set[str]) -> Any:
    if isinstance(value, list):
        kept = [v for v in value if not (isinstance(v, dict) and v.get("type") in _MENTION_TYPES)]
        return [_sanitize(v, allowed) for v in kept]
    if isinstance(value, dict):
        fixed = {k: _sanitize(v, allowed) for k, v in value.items()}
        if value.get("type") in ("mrkdwn", "markdown") and isinstance(value.get("text"), str):
            fixed["text"] = mrkdwn.neutralize(value["text"], allowed)
        return fixed
    return value


def _with_mention(message: dict[str, Any], mention: str | None) -> dict[str, Any]:
    """The routing mention (trusted) first in the text and in a first section block."""
    if not mention or not mention.strip():
        return message
    mention = mention.strip()
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": mention}}, *message["blocks"]]
    return fit({"text": f"{mention} {message['text']}", "blocks": blocks}, sdk_check=False)


def safe_default(event: Event, mention: str | None, reason: str) -> RenderedMessage:
    """The message sent when no template could be used: built without Jinja, always valid."""
    try:
        message = fit(_default_message(event))
        message = _with_mention(message, mention)
    except Exception:
        text = f"relay: event {mrkdwn.escape(str(getattr(event, 'type', '?'))[:100])}"
        message = {"text": text, "blocks": []}
        if mention and mention.strip():
            message["text"] = f"{mention.strip()} {text}"
    return RenderedMessage(message["text"], message["blocks"], FALLBACK, reason or "unknown error")


def _default_message(event: Event) -> dict[str, Any]:
    source, kind = to_text(event.source)[:60], to_text(event.type)[:80]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{source} · {kind}"[:150]}}
    ]
    provider_text = event.text if isinstance(event.text, str) else ""
    if provider_text.strip():
        blocks.append(_section(mrkdwn.escape(mrkdwn.truncate(provider_text, 2000))))
    fields: list[dict[str, Any]] = []
    data = event.data if isinstance(event.data, Mapping) else {}
    for key, value in data.items():
        if isinstance(value, Mapping | list | tuple) or _empty(value) or not str(key).strip():
            continue
        label = mrkdwn.escape(mrkdwn.truncate(str(key), 60))
        shown = mrkdwn.escape(mrkdwn.truncate(to_text(value), 300))
        fields.append({"type": "mrkdwn", "text": f"*{label}*\n{shown}"})
        if len(fields) == 10:
            break
    if fields:
        blocks.append({"type": "section", "fields": fields})
    context = [f"event `{mrkdwn.escape(humanize.short_id(event.id) or '?')}`"]
    if isinstance(event.created, datetime):
        context.append(mrkdwn.date_token(event.created))
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]}
    )
    summary = mrkdwn.truncate(provider_text.strip(), 500) if provider_text.strip() else ""
    text = f"{source} {kind}" + (f": {summary}" if summary else "")
    return {"text": mrkdwn.escape(text), "blocks": blocks}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}
