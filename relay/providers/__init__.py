"""Providers: one adapter per platform behind one protocol (`relay.providers.base.Provider`).

Each provider verifies a request (signature or token, freshness) and parses its body into
`Event`s; all are pure. `PROVIDERS` is the one registry: the config's `provider:` value names
the class, and `build_provider` makes the provider of a configured source through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from relay.config import Source
from relay.providers.anchor import AnchorProvider
from relay.providers.base import Headers, Provider
from relay.providers.deck import DeckProvider
from relay.providers.generic import GenericProvider
from relay.providers.tabstack import TabstackProvider

PROVIDERS: dict[str, type[Provider]] = {
    AnchorProvider.kind: AnchorProvider,
    DeckProvider.kind: DeckProvider,
    TabstackProvider.kind: TabstackProvider,
    GenericProvider.kind: GenericProvider,
}


def build_provider(name: str, source: Source, max_json_depth: int) -> Provider:
    """The provider of the source configured as `name`; `ValueError` (never quoting a secret)
    when the provider cannot use its settings."""
    make: Callable[[str, Any, int], Provider] = PROVIDERS[source.provider].from_config
    return make(name, source, max_json_depth)


__all__ = [
    "PROVIDERS",
    "AnchorProvider",
    "DeckProvider",
    "GenericProvider",
    "Headers",
    "Provider",
    "TabstackProvider",
    "build_provider",
]
