"""The error tree of relay, the one place that maps it to HTTP status codes, and the JSON body
of every error answer relay sends.

RelayError
├── ConfigError            config file invalid (each `Problem` names its YAML path)
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def error_body(code: str, detail: str, more: Mapping[str, Any] | None = None) -> bytes:
    """The body of every error answer: `{"error": <stable code>, "detail": <for humans>}`, and
    `more` fields where an endpoint says more (`/readyz`)."""
    return json.dumps({"error": code, "detail": detail, **(more or {})}).encode()


class RelayError(Exception):
    """Base of every error relay raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config, in two forms.

    `public` names the YAML path and what was expected, never the value found: a secret typed
    into the wrong field must not travel further, so every HTTP answer and every log line shows
    this form. `detailed` may also show the value, for the operator's own terminal (`relay
    check`); a value an environment variable brought in shows there as the `${VAR}` it was
    written as."""

    public: str
    detailed: str


class ConfigError(RelayError):
    """The configuration cannot be used: one `Problem` per thing wrong, all found at once.

    A plain string is a problem that quotes no value (the same text in both forms). `str()` of
    the error is the public form."""

    def __init__(self, problems: Sequence[Problem | str]) -> None:
        self.problems = [p if isinstance(p, Problem) else Problem(p, p) for p in problems]
        super().__init__("\n".join(self.public))

    @property
    def public(self) -> list[str]:
        """What HTTP answers and logs say: paths and expectations, no value."""
        return [p.public for p in self.problems]

    @property
    def detailed(self) -> list[str]:
        """What `relay check` prints: with the values, `${VAR}` for those from the environment."""
        return [p.detailed for p in self.problems]


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
