"""The silences JSON API, behind the admin token (`relay.http.admin`):

    GET  /api/silences                 active and future silences (`?all=1`: expired ones too)
    POST /api/silences                 create one (a `SilenceRequest` as JSON): 201
    POST /api/silences/preview         which recent outbox messages such a silence would match
    POST /api/silences/{id}/expire     end one now (also `DELETE /api/silences/{id}`)

Answers are JSON; errors are `{"error", "detail"}`: 400 for a body that is not a JSON object,
415 for another content type, 422 for a silence that cannot be honoured (the detail names the
field), 404 for an unknown silence id.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from relay.errors import UnsupportedMediaType
from relay.http.admin import admin_refusal
from relay.http.answers import error_response
from relay.http.hooks import media_type, read_body
from relay.ops import silences as service
from relay.ops.services import Services
from relay.providers.base import json_object
from relay.silences import SilenceError, parse_request


def silence_routes(services: Services) -> list[Route]:
    async def body_of(request: Request) -> dict[str, Any]:
        headers = dict(request.headers)
        if media_type(headers) != "application/json":
            raise UnsupportedMediaType("Content-Type must be application/json")
        server = services.runtime.config.server
        body = await read_body(request.receive, headers, server.max_body_bytes)
        return json_object(body, server.max_json_depth)

    def destinations() -> list[str]:
        return list(services.runtime.config.destinations)

    async def listing(request: Request) -> Response:
        if (refused := admin_refusal(services, request)) is not None:
            return refused
        now = services.clock()
        expired = request.query_params.get("all", "") not in ("", "0", "false")
        found = await service.listing(services.store, now, expired=expired)
        return JSONResponse({"silences": [s.to_json(now) for s in found]})

    async def create(request: Request) -> Response:
        if (refused := admin_refusal(services, request)) is not None:
            return refused
        now = services.clock()
        try:
            wanted = parse_request(await body_of(request))
            silence = await service.create(services.store, wanted, now, destinations())
        except SilenceError as exc:
            return error_response(422, "invalid_silence", str(exc), more={"field": exc.field})
        return JSONResponse({"silence": silence.to_json(now)}, status_code=201)

    async def preview(request: Request) -> Response:
        if (refused := admin_refusal(services, request)) is not None:
            return refused
        now = services.clock()
        try:
            wanted = parse_request(await body_of(request))
            found = await service.previewed(services.store, wanted, now, destinations())
        except SilenceError as exc:
            return error_response(422, "invalid_silence", str(exc), more={"field": exc.field})
        unchecked = sorted({text for f in found for text in f.preview.unchecked})
        rows = [
            {
                "id": f.row.id,
                "event_source": f.row.event_source,
                "event_id": f.row.event_id,
                "event_type": f.row.event_type,
                "destination": f.row.destination,
                "status": f.row.status.value,
                "created_at": f.row.created_at,
            }
            for f in found
        ]
        # the outbox keeps no event data: `when` conditions are listed, not checked
        return JSONResponse({"messages": rows, "unchecked": unchecked})

    async def expire(request: Request) -> Response:
        if (refused := admin_refusal(services, request)) is not None:
            return refused
        now = services.clock()
        silence_id = request.path_params["silence_id"]
        try:
            silence = await service.expire(services.store, silence_id, now)
        except service.SilenceNotFound:
            return error_response(404, "unknown_silence", "no silence has this id")
        return JSONResponse({"silence": silence.to_json(now)})

    return [
        Route("/api/silences", listing, methods=["GET"]),
        Route("/api/silences", create, methods=["POST"]),
        Route("/api/silences/preview", preview, methods=["POST"]),
        Route("/api/silences/{silence_id}/expire", expire, methods=["POST"]),
        Route("/api/silences/{silence_id}", expire, methods=["DELETE"]),
    ]
