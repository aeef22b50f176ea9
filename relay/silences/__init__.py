"""Silences: hold back the messages of matching events for a while (issue 15).

`model` says what a silence is and validates the requests that create one (the `key=value`
matcher form of the CLI and API included); `matching` decides, purely, which silence holds a
message back (the router calls it once per message, on the silences it read for its batch);
the storage is `relay.store.silences`; the operations the CLI, the API and the Slack buttons
share are `relay.ops.silences`; the API is `relay.http.silences`, the commands
`relay silence add|list|expire` are in `relay.cli` (text from `relay.silences.text`).
"""

from __future__ import annotations

from relay.silences.matching import Preview, SilenceSet, preview
from relay.silences.model import (
    Silence,
    SilenceError,
    SilenceRequest,
    SilenceState,
    build,
    parse_matchers,
    parse_request,
)

__all__ = [
    "Preview",
    "Silence",
    "SilenceError",
    "SilenceRequest",
    "SilenceSet",
    "SilenceState",
    "build",
    "parse_matchers",
    "parse_request",
    "preview",
]
