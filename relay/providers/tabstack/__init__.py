"""Tabstack: runs streamed as Server-Sent Events. `provider` turns raw SSE events into `Event`s
(and checks the bearer token of a piped stream), `sse` decodes a byte stream incrementally,
`story` folds a run's events into the few that are worth a message. All pure."""

from relay.providers.tabstack.provider import TabstackProvider

__all__ = ["TabstackProvider"]
