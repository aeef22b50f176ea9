"""The error tree of relay and the one place that maps it to HTTP status codes.

RelayError
├── ConfigError            config file invalid (names the YAML path)
└── IngestError            a request that cannot be accepted (carries its HTTP status)
    ├── MalformedRequest       400
    ├── Unauthorized           401 (bad, missing or stale signature/token)
    ├── UnknownSource          404
    ├── PayloadTooLarge        413
    └── UnsupportedMediaType   415
"""

from __future__ import annotations


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
