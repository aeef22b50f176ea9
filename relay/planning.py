"""Planning one event: route it, render it once per template, and say how each message joins
its conversation, digest, quiet hours or silence.

Pure apart from reading templates, so that the router, `relay render` and `relay check` plan
alike. Its inputs (runtime, event, the silences in force) and its output (`Planned`) are plain
records.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from relay.conversation.digest import group_key
from relay.conversation.steps import steps
from relay.event import Event
from relay.records import GroupSpec, NewMessage
from relay.render.renderer import Rendered
from relay.routing.router import Decision
from relay.routing.schedule import active
from relay.runtime import Runtime
from relay.silences import SilenceSet


@dataclass(frozen=True, slots=True)
class Planned:
    """What accepting an event will enqueue, and why (for `relay render` and the logs)."""

    decision: Decision
    messages: tuple[NewMessage, ...]
    template_errors: tuple[str, ...]
    routes: tuple[str, ...] = ()  # the route of each message, in order


def plan(
    runtime: Runtime,
    event: Event,
    now: float | None = None,
    silences: SilenceSet | None = None,
) -> Planned:
    """Route and render one event, and say how each message joins its conversation, digest,
    quiet hours or silence. Pure apart from reading templates (`now`, the event's acceptance,
    decides quiet hours and silences); never raises."""
    now = time.time() if now is None else now
    config = runtime.config
    decision = runtime.router.decide(event)
    messages: list[NewMessage] = []
    routes: list[str] = []
    errors: list[str] = []
    renders: dict[tuple[str | None, bool], Rendered] = {}  # one render per template
    for target in decision.targets:
        route = runtime.router.route(target.route)
        mentions = target.mentions
        muted = False
        if route is not None:
            muted = active(config.time_intervals, route.mute_during, now) is not None
            if active(config.time_intervals, route.mentions_off_during, now) is not None:
                mentions = ()
        grouped = route is not None and route.group is not None
        # a digest lists its events by their notification text: ids in full tell them apart
        key = (target.template, grouped)
        rendered = renders.get(key)
        if rendered is None:
            rendered = renders[key] = runtime.renderer.render(
                event, template=target.template, full_ids=grouped
            )
            if rendered.error:
                errors.append(f"{target.destination}: {rendered.error}")
        message = replace(rendered.message, mentions=mentions)
        pace_key = runtime.pace_keys[target.destination]
        group = None
        if route is not None and route.group is not None:
            group = GroupSpec(
                route=target.route,
                key=group_key(event, route.group.by),
                wait=route.group.wait,
                interval=route.group.interval,
                max_items=route.group.max,
                show=route.group.show,
            )
        joined = steps(
            event,
            route.thread if route is not None else None,
            route.repeat if route is not None else None,
            route=target.route,
            buttons=route.buttons if route is not None else (),
        )
        for step in joined:
            routes.append(target.route)
            held = (
                silences.holding(event, target.destination, now, step.keys()) if silences else None
            )
            messages.append(
                NewMessage(
                    destination=target.destination,
                    pace_key=pace_key,
                    template=rendered.template,
                    message=message,
                    step=step if step.kept else None,
                    muted=muted,
                    group=group,
                    silence=held.id if held is not None else None,
                )
            )
    return Planned(decision, tuple(messages), tuple(errors), tuple(routes))
