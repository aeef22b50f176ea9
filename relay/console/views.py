"""What the console's templates share: links only for http(s) URLs, times and durations as
people read them, and the Jinja environment (autoescaped, strict, its own: not the message
templates').
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


def safe_url(value: object) -> str | None:
    """The URL when it is an absolute http(s) URL with a host, else None: only those become
    links (`javascript:`, `data:`, relative and protocol-relative URLs are shown as text)."""
    if not isinstance(value, str) or any(c in value for c in "\x00\r\n\t "):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return value


def when(epoch: float | None) -> str:
    """An absolute UTC time, to the second."""
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def age(epoch: float | None, now: float | None = None) -> str:
    """How long ago, in the largest unit that fits (`42s`, `5m`, `3h`, `2d`)."""
    if epoch is None:
        return "-"
    seconds = max(0.0, (time.time() if now is None else now) - epoch)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size:.0f}{unit}"
    return f"{seconds:.0f}s"


def seconds(value: float | None) -> str:
    """A duration as people read it: `340 ms`, `2.4 s`, `3.1 min`."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("relay.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["age"] = age
    env.filters["seconds"] = seconds
    env.globals["safe_url"] = safe_url
    return env
