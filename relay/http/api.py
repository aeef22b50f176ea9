"""The JSON API under `/api/`: history's events, one event, the overview, dead letters and
what an operator does to them. Thin: each handler checks the admin token, reads its parameters
and answers what `relay.ops.history` and `relay.ops.actions` return.

Every endpoint wants `Authorization: Bearer $RELAY_ADMIN_TOKEN` (`404` while none is set,
`401` for a wrong one). Errors are relay's `{"error", "detail"}` bodies: `400 bad_query` names
the parameter at fault, `404 not_found` an event history does not hold.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from relay.http.admin import admin_refusal
from relay.http.answers import error_response
from relay.ops import actions, history
from relay.ops.services import Services
from relay.store.views import encode_cursor

MAX_BODY = 1024 * 1024
MAX_IDS = 10_000

Handler = Callable[[Request], Awaitable[Response]]


def _json(body: Any, status: int = 200) -> Response:
    # JSONResponse keeps strings as they are (ensure_ascii off): event text stays text
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _bad(detail: str) -> Response:
    return error_response(400, "bad_query", detail)


def _not_found() -> Response:
    return error_response(404, "not_found", "history holds no event with this id")


def _seq(request: Request) -> int | None:
    raw = request.path_params["id"]
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


async def _body(request: Request) -> dict[str, Any]:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise history.BadQuery("body: larger than 1 MiB")
    if not raw.strip():
        return {}
    try:
        found = json.loads(raw)
    except ValueError:
        raise history.BadQuery("body: expected a JSON object") from None
    if not isinstance(found, dict):
        raise history.BadQuery("body: expected a JSON object")
    return found


def api_routes(services: Services) -> list[Route]:
    """The `/api/` endpoints over the running relay's store and config."""

    def guarded(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            refused = admin_refusal(services, request)
            if refused is not None:
                return refused
            try:
                return await handler(request)
            except history.BadQuery as exc:
                return _bad(str(exc))

        return endpoint

    async def list_events(request: Request) -> Response:
        params = dict(request.query_params)
        f = history.parse_filter(params)
        before, limit = history.parse_page(params)
        page = await history.events(services.store, f, before, limit)
        return _json(
            {"events": [e.to_json() for e in page.items], "next": encode_cursor(page.after)}
        )

    async def one_event(request: Request) -> Response:
        seq = _seq(request)
        found = None if seq is None else await history.event(services.store, services.runtime, seq)
        if found is None:
            return _not_found()
        return _json(history.event_json(*found))

    async def overview(_request: Request) -> Response:
        o = await history.overview(services.store, services.runtime, services.clock())
        return _json(history.overview_json(o))

    async def list_dead(request: Request) -> Response:
        params = dict(request.query_params)
        f = history.parse_filter(params)
        before, limit = history.parse_page(params)
        page = await history.dead(services.store, f, before, limit)
        return _json({"dead": [d.to_json() for d in page.items], "next": encode_cursor(page.after)})

    def dead_action(action: str) -> Handler:
        async def act(request: Request) -> Response:
            body = await _body(request)
            ids = body.get("ids")
            if ids is not None and (
                not isinstance(ids, list)
                or len(ids) > MAX_IDS
                or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
            ):
                return _bad(f"ids: expected a list of at most {MAX_IDS} dead letter ids")
            raw_filter = body.get("filter")
            if ids is None and not isinstance(raw_filter, dict):
                return _bad("body: name the dead letters by ids, or by a filter ({} for all)")
            f = history.parse_filter(raw_filter) if isinstance(raw_filter, dict) else None
            targets = await history.dead_targets(services.store, ids, f)
            if body.get("dry_run"):
                return _json({"action": action, "dry_run": True, "count": len(targets)})
            if action == "replay":
                count = await services.store.replay_dead(targets, services.clock())
                services.worker.wake()
            else:
                count = await services.store.drop_dead(targets)
            return _json({"action": action, "dry_run": False, "count": count})

        return act

    async def resend(request: Request) -> Response:
        seq = _seq(request)
        body = await _body(request)
        destination = body.get("destination")
        if not isinstance(destination, str) or not destination:
            return _bad("destination: expected the name of a configured destination")
        if seq is None:
            return _not_found()
        try:
            queued = await actions.resend(services.runtime, services.store, seq, destination)
        except actions.UnknownDestination:
            return _bad("destination: no such destination in the config in force")
        if queued is None:
            return _not_found()
        services.worker.wake()
        return _json({"queued": queued.count, "destinations": list(queued.destinations)}, 202)

    async def reroute(request: Request) -> Response:
        seq = _seq(request)
        queued = (
            None if seq is None else await actions.reroute(services.runtime, services.store, seq)
        )
        if queued is None:
            return _not_found()
        services.worker.wake()
        body = {
            "queued": queued.count,
            "destinations": list(queued.destinations),
            "explanation": list(queued.explanation),
        }
        return _json(body, 202)

    return [
        Route("/api/events", guarded(list_events), methods=["GET"]),
        Route("/api/events/{id}", guarded(one_event), methods=["GET"]),
        Route("/api/events/{id}/resend", guarded(resend), methods=["POST"]),
        Route("/api/events/{id}/reroute", guarded(reroute), methods=["POST"]),
        Route("/api/overview", guarded(overview), methods=["GET"]),
        Route("/api/dead", guarded(list_dead), methods=["GET"]),
        Route("/api/dead/replay", guarded(dead_action("replay")), methods=["POST"]),
        Route("/api/dead/drop", guarded(dead_action("drop")), methods=["POST"]),
    ]
