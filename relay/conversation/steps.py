"""Conversations: how each message of an event joins a thread, updates, repeats. Pure.

For one event and one route this module decides, before anything is stored, a `Step` per outbox
row: the thread key the message belongs to (the first message of a key posts the thread's
parent, later ones reply under it), the message key it updates in place instead of posting, the
key it registers its own message under, whether a reply is also broadcast to the channel, the
event time that orders updates (an older event never overwrites a newer state), and the repeat
fingerprint. The worker acts on the step at send time, when the parent's `ts` is known.

Built-in behaviour for `thread: auto`, per provider:
- anchor: one thread per session (`session_id`, else `execution_id`, else `batch_id`);
  failures and interventions are broadcast. `intervention.requested` registers its message
  under its id (`request_id`, `requestId` or `intervention_id`, whichever is present: Anchor's
  API calls it `requestId`) and as its session's latest open request; `intervention.resolved`
  updates the request with the same id or, carrying no id, the session's latest request while it
  is still open. A resolution closes that slot, so an unpaired resolution after it (or one whose
  request relay never saw) replies in the session's thread instead.
- deck: one message per task run (`task_run.*`) and per session (`session.*`) whose status is
  updated in place; failures and `interaction_required` also reply, broadcast to the channel.
- tabstack: one message per run, updated with live progress and the final answer; a failure also
  replies, broadcast.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment

from relay.config import RepeatConfig, ThreadConfig
from relay.event import Event, dig
from relay.records import Step

_ENV = ImmutableSandboxedEnvironment(autoescape=False)
_MAX_KEY = 200


def context(event: Event) -> dict[str, Any]:
    """What a key path or expression can read."""
    return {
        "source": event.source,
        "provider": event.provider,
        "id": event.id,
        "type": event.type,
        "data": event.data,
        "envelope": event.envelope,
    }


@functools.lru_cache(maxsize=256)
def _expression(text: str) -> Any:
    return _ENV.from_string(text)


def key_value(spec: str, event: Event) -> str | None:
    """A dotted path (`data.session_id`) or a Jinja expression, as a bounded string; None if
    the event lacks it."""
    if "{{" in spec:
        try:
            value: Any = _expression(spec).render(context(event)).strip()
        except Exception:  # a key expression must not lose the event: no key, flat post
            return None
    else:
        value = dig(context(event), spec)
    if value is None or value == "" or isinstance(value, Mapping | list):
        return None
    return str(value)[:_MAX_KEY]


def _matches(kind: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(kind, p) for p in patterns)


UPDATE_ONLY = frozenset({"run.progress"})  # only ever updates a message, never posts one
_ANCHOR_BROADCAST = ("*.failed", "identity.authentication_failed", "intervention.requested")
_DECK_UPDATE = ("task_run.*", "session.*")
_DECK_BROADCAST = ("task_run.failed", "task_run.interaction_required", "session.failed")
_TABSTACK_UPDATE = ("run.*",)
_TABSTACK_BROADCAST = ("run.failed",)


def _auto_key(event: Event) -> str | None:
    data = event.data
    if event.provider == "anchor":
        for path in ("session_id", "execution_id", "batch_id"):
            if isinstance(value := data.get(path), str | int) and value != "":
                return str(value)[:_MAX_KEY]
        return None
    if event.provider == "deck":
        if event.type.startswith(("task_run.", "session.")):
            return key_value("data.id", event)
        return None
    if event.provider == "tabstack":
        return key_value("data.run_id", event)
    return None


_INTERVENTION = frozenset({"intervention.requested", "intervention.resolved"})
# Anchor's webhook docs show no id on intervention events; its API names the intervention
# `requestId` (respond-to-human-intervention); `intervention_id` is what relay's samples carried
_INTERVENTION_IDS = ("data.request_id", "data.requestId", "data.intervention_id")


def _intervention(event: Event, common: Step, session: str) -> Step:
    """An Anchor intervention: the request registers under its id and as its session's latest
    open request; the resolution updates the request of the same id, else (no id) the
    session's latest open request, and closes that slot."""
    found = (key_value(path, event) for path in _INTERVENTION_IDS)
    intervention = next((value for value in found if value is not None), None)
    mark = f"intervention:{event.source}:{intervention}" if intervention is not None else None
    slot = f"intervention-open:{event.source}:{session}"
    if event.type == "intervention.requested":
        return replace(common, register=mark, opens=slot)
    return replace(common, update=mark or slot, closes=slot)


def _defaults(provider: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(update, broadcast) globs of `thread: auto` for a provider."""
    if provider == "anchor":
        return (), _ANCHOR_BROADCAST
    if provider == "deck":
        return _DECK_UPDATE, _DECK_BROADCAST
    if provider == "tabstack":
        return _TABSTACK_UPDATE, _TABSTACK_BROADCAST
    return (), ("*.failed",)


def steps(
    event: Event,
    thread: ThreadConfig | None,
    repeat: RepeatConfig | None,
    *,
    route: str,
    buttons: Sequence[str] = (),
) -> tuple[Step, ...]:
    """The rows one (event, route, destination) produces and how each joins its conversation.

    Usually one step; two when a message updates the parent and also replies (a failure that is
    broadcast); none for a progress event that has no message to update (progress is never
    posted on its own). A plain flat post is `(Step(),)`. `buttons` (the route's Slack buttons)
    go on every step, with the event's main id for a Mute when no message key scopes it.
    """
    told = _steps(event, thread, repeat, route=route)
    if event.type in UPDATE_ONLY:
        told = tuple(s for s in told if s.update is not None)
    if buttons:
        main = main_id(event)
        told = tuple(replace(s, buttons=tuple(buttons), main=main) for s in told)
    return told


# where an event's main id is, by provider convention: what a Mute on a message that has no
# thread or repeat key silences (with the event's source and type)
MAIN_IDS = ("task_id", "session_id", "run_id", "execution_id", "batch_id", "id")


def main_id(event: Event) -> tuple[str, str] | None:
    """The first of `MAIN_IDS` the event's data has (a string or an integer), as (path, value)."""
    for path in MAIN_IDS:
        value = event.data.get(path)
        if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
            return path, str(value)[:_MAX_KEY]
    return None


def _steps(
    event: Event,
    thread: ThreadConfig | None,
    repeat: RepeatConfig | None,
    *,
    route: str,
) -> tuple[Step, ...]:
    order_at = event.created.timestamp() if event.created is not None else None
    fingerprint = None
    if repeat is not None:
        parts = [key_value(k, event) or "" for k in repeat.key]
        fingerprint = f"repeat:{event.source}:{route}:" + "|".join(parts)
    base = Step(
        order_at=order_at,
        repeat=fingerprint,
        repeat_interval=repeat.interval if repeat is not None else 0.0,
    )
    if thread is None:
        return (base,)
    raw_key = _auto_key(event) if thread.key == "auto" else key_value(thread.key, event)
    if raw_key is None:
        return (base,)
    key = f"thread:{event.source}:{raw_key}"
    auto_update, auto_broadcast = _defaults(event.provider)
    if thread.key != "auto":
        auto_update, auto_broadcast = (), ("*.failed",)
    update_globs = auto_update if thread.update is None else tuple(thread.update)
    broadcast_globs = auto_broadcast if thread.broadcast is None else tuple(thread.broadcast)
    broadcast = _matches(event.type, broadcast_globs)
    common = Step(thread=key, order_at=order_at, ttl=thread.ttl)

    auto = thread.key == "auto"
    if auto and event.provider == "anchor" and event.type in _INTERVENTION:
        return (_intervention(event, replace(common, broadcast=broadcast), raw_key),)

    if _matches(event.type, update_globs):
        update = replace(common, update=key)
        if broadcast:
            return (update, replace(common, broadcast=True))
        return (update,)
    return (
        replace(
            common,
            broadcast=broadcast,
            repeat=fingerprint,
            repeat_interval=base.repeat_interval,
        ),
    )
