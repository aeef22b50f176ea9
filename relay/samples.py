"""Sample events shipped with relay (for `relay check`) and reading an event file (`relay render`).

The samples in `relay/samples/` are example events of every type of every platform; `relay check`
renders each one through the configured routes and templates. Reading a file parses it with the
provider of the matching source but skips signature verification: it is a local file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from relay.errors import MalformedRequest
from relay.event import Event, as_stored
from relay.providers.tabstack import TabstackProvider
from relay.providers.tabstack.sse import SSEDecoder
from relay.providers.tabstack.story import RunStory
from relay.runtime import Runtime

SAMPLES = Path(__file__).parent / "samples"


def story_of(provider: TabstackProvider, run_id: str, stream: bytes) -> list[Event]:
    """Fold a whole Tabstack SSE stream into its story events."""
    story = RunStory(run_id)
    told: list[Event] = []
    decoder = SSEDecoder()
    for seq, (name, data, _last_id) in enumerate(decoder.feed(stream)):
        told += story.feed(provider.event_from_sse(run_id, seq, name, data))
    return told + story.finish()


def _guess_source(runtime: Runtime, path: Path, body: bytes) -> str:
    kinds = {name: p.kind for name, p in runtime.providers.items()}
    want = "tabstack"
    if path.suffix != ".sse":
        try:
            obj = json.loads(body)
        except ValueError:
            raise MalformedRequest(f"{path}: not valid JSON") from None
        want = "deck" if isinstance(obj, dict) and obj.get("object") == "event" else "anchor"
    for name, kind in kinds.items():
        if kind == want:
            return name
    raise MalformedRequest(
        f"{path}: looks like a {want} event but no {want} source is configured; pass --source"
    )


def events_from_file(runtime: Runtime, path: Path, source: str | None) -> list[Event]:
    """The events of a file, as relay would route them once accepted (`as_stored`)."""
    body = path.read_bytes()
    name = source or _guess_source(runtime, path, body)
    provider = runtime.providers.get(name)
    if provider is None:
        raise MalformedRequest(f"no source named '{name}' is configured")
    if isinstance(provider, TabstackProvider):
        return [as_stored(e) for e in story_of(provider, path.stem, body)]
    return [as_stored(e) for e in provider.parse({"content-type": "application/json"}, body)]


def sample_events(runtime: Runtime) -> Iterator[Event]:
    """Every shipped sample, parsed by every configured source of its provider kind."""
    for _name, provider in sorted(runtime.providers.items()):
        folder = SAMPLES / provider.kind
        if not folder.is_dir():
            continue
        for file in sorted(folder.iterdir()):
            if isinstance(provider, TabstackProvider) and file.suffix == ".sse":
                yield from story_of(provider, file.stem, file.read_bytes())
            elif file.suffix == ".json" and not isinstance(provider, TabstackProvider):
                yield from provider.parse({"content-type": "application/json"}, file.read_bytes())
