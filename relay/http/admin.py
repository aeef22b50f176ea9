"""The admin token check every admin endpoint shares (`Authorization: Bearer <token>`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from relay.http.answers import admin_refusal as refusal
from relay.ops.services import Services


def admin_refusal(services: Services, request: Request) -> Response | None:
    """None when the request carries the admin token; else the answer to give (404 when no
    admin token is set: the endpoint does not exist; 401 for a missing or wrong token)."""
    return refusal(services.admin_token, request.headers.get("authorization", ""))
