"""The one conformance test every provider passes (STYLE.md principle 3).

For each registered kind: a correctly signed/authorized request verifies and parses to Events
with source, provider, id and type set; a wrong signature or token is `Unauthorized`; a properly
authenticated garbage body is `MalformedRequest`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from harness import sample
from signing import ANCHOR_SECRET, DECK_SECRET, anchor_headers, deck_headers

from relay.errors import MalformedRequest, Unauthorized
from relay.providers import (
    PROVIDERS,
    AnchorProvider,
    DeckProvider,
    GenericProvider,
    TabstackProvider,
)
from relay.providers.base import Provider

NOW = 1_800_000_000
GARBAGE = "\x00 this is not an event { ½".encode()


def _generic_headers(body: bytes, secret: str = "generic-secret") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Signature": f"sha256={digest}"}


def _bearer(token: str) -> Callable[[bytes], dict[str, str]]:
    return lambda _body: {"Content-Type": "text/event-stream", "Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Case:
    provider: Provider
    body: bytes
    sign: Callable[[bytes], dict[str, str]]
    forge: Callable[[bytes], dict[str, str]]


CASES = {
    "anchor": Case(
        AnchorProvider("anchor-src", [ANCHOR_SECRET]),
        sample("anchor", "task.completed.json").read_bytes(),
        lambda body: anchor_headers(body, NOW),
        lambda body: anchor_headers(body, NOW, secret="ff" * 32),
    ),
    "deck": Case(
        DeckProvider("deck-src", [DECK_SECRET]),
        sample("deck", "task_run.failed.json").read_bytes(),
        lambda body: deck_headers(body, NOW),
        lambda body: deck_headers(body, NOW, secret="whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"),
    ),
    "tabstack": Case(
        TabstackProvider("tabstack-src", "test-token"),
        sample("tabstack", "run-error-current-format.sse").read_bytes(),
        _bearer("test-token"),
        _bearer("wrong-token"),
    ),
    "generic": Case(
        GenericProvider("generic-src", secrets=["generic-secret"]),
        b'{"id": "g-1", "type": "deploy.finished", "service": "api"}',
        _generic_headers,
        lambda body: _generic_headers(body, "wrong-secret"),
    ),
}


def test_every_registered_kind_has_a_case() -> None:
    assert set(CASES) == set(PROVIDERS)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_provider_conformance(kind: str) -> None:
    case = CASES[kind]
    provider = case.provider
    assert provider.kind == kind and isinstance(provider, PROVIDERS[kind])

    headers = case.sign(case.body)
    provider.verify(headers, case.body, NOW)
    events = provider.parse(headers, case.body)
    assert events
    for event in events:
        assert event.source == provider.source
        assert event.provider == kind
        assert event.id and event.type

    with pytest.raises(Unauthorized):
        provider.verify(case.forge(case.body), case.body, NOW)

    garbage_headers = case.sign(GARBAGE)
    provider.verify(garbage_headers, GARBAGE, NOW)
    with pytest.raises(MalformedRequest):
        provider.parse(garbage_headers, GARBAGE)
