"""Silences as `relay silence` prints them, and the times it reads (`--until`)."""

from __future__ import annotations

from datetime import UTC, datetime

from relay.silences.model import Silence, SilenceError


def when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def matchers(silence: Silence) -> str:
    """The matchers in the `key=value` form `relay silence add` takes (regexes as `=~`)."""
    parts: list[str] = []
    m = silence.match
    if m.source:
        parts.append("source=" + ",".join(m.source))
    if m.type:
        parts.append("type=" + ",".join(m.type))
    for c in m.when:
        parts.append(f"data.{c.path} {c.operator} {getattr(c, c.operator)!r}")
    if silence.destination is not None:
        parts.append(f"destination={silence.destination}")
    if silence.key is not None:
        parts.append(f"key={silence.key}")
    return " ".join(parts)


def line(silence: Silence, now: float) -> str:
    state = silence.state(now).value
    by = f" by {silence.created_by}" if silence.created_by else ""
    comment = f"  # {silence.comment}" if silence.comment else ""
    return (
        f"{silence.id}  {state:<8} {when(silence.starts_at)} -> {when(silence.ends_at)}{by}"
        f"  {matchers(silence)}{comment}"
    )


def parse_time(text: str, field: str = "ends_at") -> float:
    """An ISO 8601 time (`2026-12-02T16:05`, UTC unless it names its zone) or epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise SilenceError(
            field, f"'{text}' is not a time (expected ISO 8601 such as 2026-12-02T16:05Z)"
        ) from None
    if found.tzinfo is None:
        found = found.replace(tzinfo=UTC)
    return found.timestamp()
