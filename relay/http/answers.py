"""Every error answer relay gives through Starlette, as the one JSON body of
`relay.errors.error_body`: relay's own refusals, and Starlette's (`404` for a path no route
has, `405` for a method a route does not take). The acknowledgement path
(`relay.http.hooks`) and the protocol (`relay.http.protocol`) send the same body through ASGI
or the raw transport.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import Response

from relay.errors import error_body


def admin_refusal(token: str | None, authorization: str) -> Response | None:
    """None when `authorization` carries the admin token; else the answer to give: `404` while
    no admin token is set (the admin endpoints are off), `401` for a missing or wrong one."""
    if not token:
        return error_response(404, "admin_disabled", "set RELAY_ADMIN_TOKEN to enable this")
    if not hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode()):
        return error_response(401, "unauthorized", "missing or wrong bearer token")
    return None


def error_response(
    status: int,
    error: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    more: Mapping[str, Any] | None = None,
) -> Response:
    body = error_body(error, detail, more)
    return Response(body, status, headers=headers, media_type="application/json")


def http_error(exc: HTTPException) -> Response:
    """Starlette's refusals: no route has the path (`404`), or the route takes other methods
    (`405`, with the `Allow` Starlette sets). The detail never quotes the request."""
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return error_response(
            405, "method_not_allowed", f"this endpoint takes {allowed}", exc.headers
        )
    if exc.status_code == 404:
        return error_response(404, "not_found", "no endpoint at this path", exc.headers)
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    return error_response(exc.status_code, code, exc.detail, exc.headers)
