"""One event (`/console/events/{id}`): where it went and why. The envelope as received (pretty
JSON), the routing trace (the explanation `relay routes` prints), each message with a preview
laid out like the chat shows it beside the raw payload its chat is sent, the attempts as a
timeline, where the message is in the chat when relay knows it; and two actions, each asked to
confirm first: resend to a destination, and route again under the config in force
(`relay.ops.actions`, as the JSON API does).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from relay.console.page import Answer, Ask, Goto, Page, Shown
from relay.console.preview import preview
from relay.ops import actions, history

DONE = {"resend": "resent", "reroute": "rerouted"}


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def _seq(ask: Ask) -> int:
    return int(ask.part("id") or 0)


def _missing(seq: int) -> Shown:
    detail = f"History holds no event {seq}: it never came, or it is older than store.history."
    return Shown("refused.html.j2", {"detail": detail}, status=404)


async def _page(ask: Ask, notice: str = "", error: str = "", status: int = 200) -> Answer:
    services = ask.services
    seq = _seq(ask)
    found = await history.event(services.store, services.runtime, seq)
    if found is None:
        return _missing(seq)
    detail, shown = found
    routing = detail.routing
    messages = [
        {
            "view": m.view,
            "preview": preview(m.view.message, m.view.destination),
            "payload": None if m.payload is None else _pretty(m.payload),
        }
        for m in shown
    ]
    return Shown(
        "event.html.j2",
        {
            "event": detail.summary,
            "provider": detail.provider,
            "envelope": _pretty(detail.envelope),
            "explanation": [str(x) for x in routing.get("explanation") or ()],
            "template_errors": [str(x) for x in routing.get("template_errors") or ()],
            "routed_under": str(routing.get("config") or ""),
            "messages": messages,
            "destinations": sorted(services.runtime.config.destinations),
            "notice": notice,
            "error": error,
            "now": services.clock(),
        },
        status=status,
    )


async def show(ask: Ask) -> Answer:
    done, count, to = ask.arg("done"), ask.arg("count"), ask.arg("to")
    notice = ""
    if done in DONE.values() and count.isdigit():
        where = f" to {to}" if to in ask.services.runtime.config.destinations else ""
        notice = f"{done.capitalize()}: {int(count)} message(s) queued{where}."
    return await _page(ask, notice)


async def act(ask: Ask) -> Answer:
    """First POST: say what the action will do and ask to confirm; the second (`confirm`)
    queues the messages and comes back to the event."""
    services = ask.services
    seq = _seq(ask)
    action = ask.field("action")
    destination = ask.field("destination")
    if action not in DONE:
        return await _page(ask, error="Choose resend or route again.", status=400)
    if action == "resend" and destination not in services.runtime.config.destinations:
        return await _page(ask, error="Choose a destination to resend to.", status=400)
    if ask.field("confirm") != "yes":
        found = await services.store.history_event(seq)
        if found is None:
            return _missing(seq)
        return Shown(
            "event_confirm.html.j2",
            {"action": action, "destination": destination, "event": found.summary},
        )
    if action == "resend":
        try:
            queued = await actions.resend(services.runtime, services.store, seq, destination)
        except actions.UnknownDestination:
            return await _page(ask, error="Choose a destination to resend to.", status=400)
    else:
        queued = await actions.reroute(services.runtime, services.store, seq)
    if queued is None and await services.store.history_event(seq) is None:
        return _missing(seq)
    count = queued.count if queued is not None else 0
    query = {"done": DONE[action], "count": str(count)}
    if action == "resend":
        query["to"] = destination
    return Goto(f"/console/events/{seq}?{urlencode(query)}")


PAGE = Page(
    path="/events/{id:int}", title="Event", show=show, act=act, menu=False, section="/events"
)
