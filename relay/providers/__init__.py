"""Platform adapters behind one protocol (`relay.providers.base.Provider`), registered by kind.

Each provider verifies a request (signature or token, freshness) and parses its body into
`Event`s; all are pure. `PROVIDERS` maps the config's `provider:` value to the class.
"""

from __future__ import annotations

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

__all__ = [
    "PROVIDERS",
    "AnchorProvider",
    "DeckProvider",
    "GenericProvider",
    "Headers",
    "Provider",
    "TabstackProvider",
]
