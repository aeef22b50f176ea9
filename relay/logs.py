"""Structured logs: one JSON object per line on stderr, carrying the `extra` fields of each call.

Log calls pass ids and reasons as `extra={...}`; secrets are never passed to a logger (the
config keeps them as `SecretStr`, whose text is `**********`). Two safety nets on top: the
HTTP client libraries, whose debug output carries URLs (a webhook URL is a secret) and headers,
never log below WARNING; and every line is scrubbed of the secret values the config declared
(`protect`), whatever path a secret took to get there (an exception message, say).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

_PROTECTED: set[str] = set()
REDACTED = "[redacted]"
# their debug logs print request URLs, bodies and headers: never below WARNING
_CHATTY = ("uvicorn.access", "slack_sdk", "httpx", "httpcore", "aiohttp", "psycopg", "asyncio")


def protect(values: Iterable[str]) -> None:
    """Secret values to scrub from every log line from now on (short ones are ignored)."""
    _PROTECTED.update(v for v in values if v and len(v) >= 6)


def protected() -> tuple[str, ...]:
    """The values `protect` was given (a child process protects the same)."""
    return tuple(_PROTECTED)


def scrub(text: str) -> str:
    for secret in sorted(_PROTECTED, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return scrub(json.dumps(entry, default=str, ensure_ascii=False))


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in _CHATTY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
