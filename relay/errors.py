"""The error tree of relay, the one place that maps it to HTTP status codes, and the JSON body
of every error answer relay sends.

RelayError
├── ConfigError            config file invalid (names the YAML path)
└── IngestError            a request that cannot be accepted (carries its HTTP status)
    ├── MalformedRequest       400
    ├── Unauthorized           401 (bad, missing or stale signature/token)
    ├── UnknownSource          404
    ├── PayloadTooLarge        413
    └── UnsupportedMediaType   415

The other error answers of the HTTP edge, by `error` code: `400 malformed` (not valid HTTP/1.1,
answered by `relay.httpproto`), `401 unauthorized` and `404 admin_disabled` (the admin token),
`404 not_found` (no endpoint at the path), `405 method_not_allowed` (with `Allow`), `422
invalid_config` (a reload), `431 headers_too_large`, `500 internal`, `502 tabstack_refused` and
`tabstack_unreachable`, `503 shutting_down`, `not_ready` (`/readyz`) and `overloaded` (too many
requests open at once). Every one carries the body `error_body` makes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def error_body(code: str, detail: str, more: Mapping[str, Any] | None = None) -> bytes:
    """The body of every error answer: `{"error": <stable code>, "detail": <for humans>}`, and
    `more` fields where an endpoint says more (`/readyz`)."""
    return json.dumps({"error": code, "detail": detail, **(more or {})}).encode()


class RelayError(Exception):
    """Base of every error relay raises on purpose."""


class ConfigError(RelayError):
    """The configuration cannot be used; `errors` lists one message per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


class IngestError(RelayError):
    """A request relay refuses. `code` is a stable machine-readable name, `detail` for humans."""

    status = 400
    code = "bad_request"

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class MalformedRequest(IngestError):
    status = 400
    code = "malformed"


class Unauthorized(IngestError):
    status = 401
    code = "unauthorized"


class UnknownSource(IngestError):
    status = 404
    code = "unknown_source"


class PayloadTooLarge(IngestError):
    status = 413
    code = "too_large"


class UnsupportedMediaType(IngestError):
    status = 415
    code = "unsupported_media_type"
