"""The admin token check every admin endpoint shares (`Authorization: Bearer <token>`)."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from relay.http.answers import error_response
from relay.ops.services import Services


def admin_refusal(services: Services, request: Request) -> Response | None:
    """None when the request carries the admin token; else the answer to give (404 when no
    admin token is set: the endpoint does not exist; 401 for a missing or wrong token)."""
    token = services.admin_token
    if not token:
        return error_response(404, "admin_disabled", "set RELAY_ADMIN_TOKEN to enable this")
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return error_response(401, "unauthorized", "missing or wrong bearer token")
    return None
