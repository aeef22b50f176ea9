"""Silences (`/console/silences`): the active ones (or all, expired included), a form that
creates one (matchers in the `key=value` form of `relay silence add`, a destination, a duration,
a comment; the creator is `console`), which first previews the recent messages the silence would
have matched (`relay.ops.silences.previewed`), and a button that expires one. A matcher relay
cannot take is shown beside its field, as the API names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from relay.console.page import Answer, Ask, Goto, Page, Shown
from relay.ops import silences as service
from relay.silences import SilenceError, parse_request

FORM = ("matchers", "destination", "duration", "comment")
CREATOR = "console"


def _typed(ask: Ask) -> dict[str, str]:
    return {k: ask.field(k) for k in FORM}


def _request(typed: Mapping[str, str]) -> Any:
    """The silence the form asks for (`SilenceError` naming the field)."""
    lines = [x.strip() for x in typed["matchers"].splitlines() if x.strip()]
    return parse_request(
        {
            "matchers": lines,
            "destination": typed["destination"] or None,
            "duration": typed["duration"] or None,
            "comment": typed["comment"],
            "created_by": CREATOR,
        }
    )


def _field_of(error: SilenceError) -> str:
    """Which form field an error belongs to (`matchers[1]` -> matchers; `match.*` too)."""
    name = error.field.split("[")[0].split(".")[0]
    if name in ("match", "matchers", "key"):
        return "matchers"
    if name in ("ends_at", "starts_at"):
        return "duration"
    return name if name in FORM else "matchers"


async def _page(
    ask: Ask,
    *,
    typed: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    preview: list[service.Previewed] | None = None,
    notice: str = "",
    status: int = 200,
) -> Shown:
    services = ask.services
    now = services.clock()
    everything = ask.arg("all") == "1"
    found = await service.listing(services.store, now, expired=everything)
    unchecked = sorted({t for p in preview or () for t in p.preview.unchecked})
    return Shown(
        "silences.html.j2",
        {
            "silences": [(s, s.state(now).value) for s in found],
            "everything": everything,
            "typed": typed or {k: "" for k in FORM} | {"duration": "1h"},
            "errors": errors or {},
            "preview": preview,
            "unchecked": unchecked,
            "destinations": sorted(services.runtime.config.destinations),
            "notice": notice,
            "now": now,
        },
        status=status,
    )


async def show(ask: Ask) -> Answer:
    done, which = ask.arg("done"), ask.arg("id")
    notice = ""
    if done in ("created", "expired") and which.startswith("sil_") and which[4:].isalnum():
        notice = f"Silence {which} {done}."
    return await _page(ask, notice=notice)


async def act(ask: Ask) -> Answer:
    services = ask.services
    now = services.clock()
    action = ask.field("action")
    if action == "expire":
        silence_id = ask.field("id")
        try:
            gone = await service.expire(services.store, silence_id, now)
        except service.SilenceNotFound:
            return await _page(ask, notice="No silence has this id.", status=404)
        return Goto("/console/silences?" + urlencode({"done": "expired", "id": gone.id}))
    if action not in ("preview", "create"):
        return await _page(ask, notice="Choose preview, create or expire.", status=400)
    typed = _typed(ask)
    destinations = list(services.runtime.config.destinations)
    try:
        wanted = _request(typed)
        if action == "preview":
            found = await service.previewed(services.store, wanted, now, destinations)
            return await _page(ask, typed=typed, preview=found)
        silence = await service.create(services.store, wanted, now, destinations)
    except SilenceError as exc:
        errors = {_field_of(exc): f"{exc.field}: {exc.detail}"}
        return await _page(ask, typed=typed, errors=errors, status=422)
    return Goto("/console/silences?" + urlencode({"done": "created", "id": silence.id}))


PAGE = Page(path="/silences", title="Silences", show=show, act=act)
