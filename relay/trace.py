"""Why an event goes where it goes: the explanation `relay routes` prints, and the routing trace
history keeps of every routed event (the same explanation, with the rules' verdicts and each
message's route, template and conversation as data).

Pure: a function of the runtime's router and renderer, the event and its routing decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from relay.event import Event, json_text
from relay.records import NewMessage
from relay.routing.router import Decision

if TYPE_CHECKING:
    from relay.runtime import Runtime


def explain(runtime: Runtime, event: Event, decision: Decision | None = None) -> list[str]:
    """Which rules matched an event and why, in order, then where it goes (`relay routes`)."""
    if decision is None:
        decision = runtime.router.decide(event)
    lines = [f"{event.source} {event.type} ({event.id})"]
    width = max((len(t.route) for t in decision.trace), default=0)
    for t in decision.trace:
        lines.append(f"  {t.route:<{width}}  {t.verdict}")
    if decision.dropped_by:
        lines.append(f"=> dropped by {decision.dropped_by}")
    elif not decision.targets:
        lines.append("=> goes nowhere")
    for target in decision.targets:
        route = runtime.router.route(target.route)
        extras = [
            f"route {target.route}",
            f"template {runtime.renderer.resolve(event, target.template)}",
        ]
        if target.mentions:
            extras.append(f"mention {' '.join(target.mentions)}")
        if route is not None:
            if route.thread is not None:
                extras.append(f"thread {route.thread.key}")
            if route.repeat is not None:
                extras.append(f"repeat by {', '.join(route.repeat.key)}")
            if route.group is not None:
                extras.append(f"digest by {', '.join(route.group.by)}")
            if route.mute_during:
                extras.append(f"muted during {', '.join(route.mute_during)}")
        lines.append(f"=> {target.destination}: {'; '.join(extras)}")
    return lines


def routing_trace(
    runtime: Runtime,
    event: Event,
    decision: Decision,
    messages: Sequence[NewMessage],
    routes: Sequence[str],
    template_errors: Sequence[str],
) -> str:
    """The routing decision as history keeps it (JSON text): `relay routes`' explanation, each
    rule's verdict, what dropped the event, and how each message was made."""
    trace: dict[str, Any] = {
        "explanation": explain(runtime, event, decision),
        "rules": [
            {"route": t.route, "matched": t.matched, "verdict": t.verdict} for t in decision.trace
        ],
        "dropped_by": decision.dropped_by,
        "messages": [
            {
                "destination": m.destination,
                "route": route,
                "template": m.template,
                "muted": m.muted,
                "digest": m.group.key if m.group is not None else None,
                "conversation": m.step.to_json() if m.step is not None else None,
            }
            for m, route in zip(messages, routes, strict=False)
        ],
        "template_errors": list(template_errors),
        "config": runtime.digest,  # the config (and templates) it was routed under
    }
    return json_text(trace)
