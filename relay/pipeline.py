"""The pipeline: the one place that knows the order of the stages.

    verify -> parse (providers) -> route (routing) -> render (render) -> persist + dedup (store)
    -> deliver (worker, later, on its own schedule)

`Pipeline.accept` runs route and render at enqueue time, so a retry resends exactly the same
message and a template edit never changes what is already queued, then writes the event id and
its messages in one transaction. Only then does the HTTP edge answer 202.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relay.conversation import steps
from relay.digest import group_key
from relay.event import Event
from relay.metrics import Metrics
from relay.routing import Decision
from relay.runtime import Runtime
from relay.schedule import active
from relay.store import Acceptance, GroupSpec, NewMessage
from relay.stores import Store

log = logging.getLogger("relay.pipeline")


@dataclass(frozen=True, slots=True)
class Planned:
    """What accepting an event will enqueue, and why (for `relay render` and the logs)."""

    decision: Decision
    messages: tuple[NewMessage, ...]
    template_errors: tuple[str, ...]
    routes: tuple[str, ...] = ()  # the route of each message, in order


def plan(runtime: Runtime, event: Event, now: float | None = None) -> Planned:
    """Route and render one event, and say how each message joins its conversation, digest or
    quiet hours. Pure apart from reading templates (`now` decides quiet hours); never raises."""
    now = time.time() if now is None else now
    config = runtime.config
    decision = runtime.router.decide(event)
    messages: list[NewMessage] = []
    routes: list[str] = []
    errors: list[str] = []
    for target in decision.targets:
        route = runtime.router.route(target.route)
        mention = target.mention
        muted = False
        if route is not None:
            muted = active(config.time_intervals, route.mute_during, now) is not None
            if active(config.time_intervals, route.mentions_off_during, now) is not None:
                mention = None
        rendered = runtime.renderer.render(event, template=target.template, mention=mention)
        if rendered.error:
            errors.append(f"{target.destination}: {rendered.error}")
        payload: dict[str, Any] = {"text": rendered.text, "blocks": rendered.blocks}
        pace_key = runtime.pace_keys[target.destination]
        group = None
        if route is not None and route.group is not None:
            payload["line"] = rendered.text
            if mention:
                payload["line"] = rendered.text.removeprefix(f"{mention} ")
                payload["mention"] = mention
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
        )
        for step in joined:
            routes.append(target.route)
            messages.append(
                NewMessage(
                    destination=target.destination,
                    pace_key=pace_key,
                    template=rendered.template,
                    payload=payload,
                    step=step.to_json() if step.joins else None,
                    muted=muted,
                    group=group,
                )
            )
    return Planned(decision, tuple(messages), tuple(errors), tuple(routes))


class Pipeline:
    """Accepts events: plan, persist, count; the worker delivers later."""

    def __init__(
        self,
        runtime: Runtime,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        on_enqueued: Callable[[], None] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.clock = clock
        self.on_enqueued = on_enqueued
        self.metrics = metrics or Metrics()

    async def accept(self, event: Event) -> Acceptance:
        planned = plan(self.runtime, event, self.clock())
        fields = {"event_id": event.id, "event_type": event.type, "source": event.source}
        for error in planned.template_errors:
            log.error(
                "template failed, sent the safe default message", extra={**fields, "detail": error}
            )
        result = await self.store.accept(event, planned.messages, self.clock())
        self._count(event, planned, result)
        if result is Acceptance.DUPLICATE:
            log.info("duplicate event ignored", extra=fields)
            return result
        if planned.decision.dropped_by:
            log.info(
                "event dropped by route", extra={**fields, "route": planned.decision.dropped_by}
            )
        elif not planned.messages and planned.decision.targets:
            log.info("progress event with no message to update: not posted", extra=fields)
        elif not planned.messages:
            log.info("event matched no route", extra=fields)
        else:
            log.info(
                "event accepted",
                extra={**fields, "destinations": [m.destination for m in planned.messages]},
            )
            if self.on_enqueued:
                self.on_enqueued()
        return result

    def _count(self, event: Event, planned: Planned, result: Acceptance) -> None:
        m = self.metrics
        if result is Acceptance.DUPLICATE:
            m.duplicates.labels(event.source).inc()
            return
        m.accepted.labels(event.source, m.event_type(event.type)).inc()
        if planned.decision.dropped_by:
            m.dropped.labels(planned.decision.dropped_by).inc()
        elif not planned.decision.targets:
            m.unrouted.labels(event.source).inc()
        for target in planned.decision.targets:
            m.routed.labels(target.route, target.destination).inc()
            m.rendered.labels(target.destination).inc()
        for error in planned.template_errors:
            m.fallbacks.labels(error.split(":", 1)[0]).inc()
