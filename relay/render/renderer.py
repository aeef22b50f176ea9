"""The render stage: an Event -> a Slack message ({text, blocks}) via a sandboxed Jinja template.

Templates (built-ins in `relay/render/templates/`, overridden by name from the user's folder)
render a JSON document `{"text": ..., "blocks": [...]}`. Safety does not depend on the template
author:

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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

from relay.event import Event
from relay.messages import Blocks, Card, Detail, Field, Message
from relay.render import mrkdwn
from relay.render.blockkit import fit
from relay.render.escaping import ALLOWED, EVENT, FULL_IDS, current_event, finalize
from relay.render.fallback import default_message
from relay.render.filters import FILTERS, TemplateOutputError, f_concat
from relay.render.layout import RENDERED, message
from relay.render.layout import output as layout_output
from relay.render.sandbox import FastSandbox

BUILTIN_DIR = Path(__file__).parent / "templates"
FALLBACK = "<fallback>"
SUFFIX = ".j2"

_MENTION_TYPES = frozenset({"broadcast", "user", "usergroup", "channel"})


@dataclass(frozen=True)
class Rendered:
    """What a template made of an event: the message, which template, and why it fell back
    to the safe default message, if it did."""

    message: Message
    template: str
    error: str | None = None


# --- the environment -----------------------------------------------------------------------


class _SlackCodeGenerator(CodeGenerator):
    """Compiles `~` to the Slack-escaping join instead of Jinja's HTML-escaping one."""

    def visit_Concat(self, node: jinja_nodes.Concat, frame: Frame) -> None:
        self.write("environment.relay_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _SlackEnvironment(FastSandbox):
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
        finalize=finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # a template edit applies on reload, which builds a new renderer
        extensions=["jinja2.ext.loopcontrols"],
    )
    env.filters.update(FILTERS)
    env.globals.update(FILTERS)
    env.globals["current_event"] = current_event
    # the layout: `_layout.j2` exports it, and built-in templates call it as a global (importing
    # it costs a set difference over every global at each render)
    env.globals["layout_message"] = env.globals["message"] = message
    env.trust(env.globals.values())
    return env


# --- the renderer --------------------------------------------------------------------------


def candidates(event: Event) -> list[str]:
    """Template names to try, most specific first (`source` before `provider`)."""
    return list(_candidates(event.source, event.provider, event.type, event.entity))


# the names for a kind of event are asked for at every render and routing trace: the last few
# are kept (bench/render.py)
@functools.lru_cache(maxsize=512)
def _candidates(source: str, provider: str, kind: str, entity: str) -> tuple[str, ...]:
    names: list[str] = []
    for where in dict.fromkeys([source, provider]):
        for name in (f"{where}/{kind}", f"{where}/{entity}.*", f"{where}/default"):
            if name not in names:
                names.append(name)
    names.append("default")
    return tuple(names)


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
        self, event: Event, *, template: str | None = None, full_ids: bool = False
    ) -> Rendered:
        """The message for `event`; `full_ids`: the `short_id` filter shows ids whole."""
        name = FALLBACK
        try:
            name = self.resolve(event, template)
            if name == FALLBACK:
                raise TemplateNotFound(template or candidates(event)[0])
            token = FULL_IDS.set(full_ids)
            try:
                message = self._render(name, event)
            finally:
                FULL_IDS.reset(token)
            problem = None
            if template and name != _strip_suffix(template):
                problem = f"template '{template}' not found; used '{name}'"
            return Rendered(message, name, problem)
        except Exception as exc:
            return safe_default(event, f"{name}: {_describe(exc)}")

    def _render(self, name: str, event: Event) -> Message:
        allowed: set[str] = set()
        token, current, card = ALLOWED.set(allowed), EVENT.set(event), RENDERED.set(None)
        try:
            made, output = layout_output(
                self._env.get_template(name + SUFFIX).render(context_of(event))
            )
        finally:
            ALLOWED.reset(token)
            EVENT.reset(current)
            RENDERED.reset(card)
        if made is not None:
            return card_of(made, allowed)  # the layout's card, as it made it
        try:
            document = json.loads(output)
        except ValueError as exc:
            pos = getattr(exc, "pos", 0) or 0
            near = output[max(0, pos - 60) : pos + 20].replace("\n", " ")
            raise TemplateOutputError(f"output is not valid JSON ({exc}); near: {near!r}") from exc
        if not isinstance(document, dict):
            raise TemplateOutputError(
                "output must be a JSON object: a card (the layout's `message(...)`) or Slack's"
                " {'text': ..., 'blocks': [...]}"
            )
        if document.get("kind") == "card":
            return card_of(Card.from_json(document), allowed)
        fitted = fit(sanitize(document, allowed), sdk_check=not self.builtin_only)
        return Blocks(fitted["text"], tuple(fitted["blocks"]))

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


def card_of(card: Card, allowed: set[str]) -> Card:
    """The card a template rendered, its texts neutralized (`mrkdwn.neutralize`): a control
    sequence the renderer's own filters did not make in this render is shown as text."""

    # Built directly, not with `dataclasses.replace`, and keeping each text object that
    # needs no change: most texts hold no `<` at all (a tenth of a render's time, this was).
    def clean(text: str | None) -> str | None:
        return None if text is None else mrkdwn.neutralize(text, allowed)

    def field(f: Field) -> Field:
        label, value = mrkdwn.neutralize(f.label, allowed), mrkdwn.neutralize(f.value, allowed)
        return f if label is f.label and value is f.value else Field(label, value)

    def detail(d: Detail) -> Detail:
        label, code = mrkdwn.neutralize(d.label, allowed), mrkdwn.neutralize(d.code, allowed)
        return d if label is d.label and code is d.code else Detail(label, code)

    return Card(
        status=card.status,
        title=" ".join(card.title.split()),
        fact=clean(card.fact),
        summary=clean(card.summary),
        errors=clean(card.errors),
        fields=tuple(field(f) for f in card.fields if f.value.strip()),
        sections=tuple(mrkdwn.neutralize(t, allowed) for t in card.sections if t.strip()),
        details=tuple(detail(d) for d in card.details if d.code.strip()),
        buttons=tuple(b for b in card.buttons if mrkdwn.safe_url(b.url) and b.text.strip()),
        context=clean(card.context),
        repeat=card.repeat,
        mentions=(),
    )


def safe_default(event: Event, reason: str) -> Rendered:
    """The message sent when no template could be used: built without Jinja, always valid."""
    try:
        message: Message = default_message(event)
    except Exception:
        text = f"relay: event {mrkdwn.escape(str(getattr(event, 'type', '?'))[:100])}"
        message = Blocks(text)
    return Rendered(message, FALLBACK, reason or "unknown error")
