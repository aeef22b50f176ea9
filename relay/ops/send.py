"""`relay send`: a shipped sample event (or a file) signed as its platform signs it, ready to post.

Finding the event (a sample's name, `anchor/task.failed` or its stem `task.failed`, or a path),
choosing the configured source it goes to, giving it a fresh id (so that relay's dedup does not
swallow a second try) and building the headers the source's provider verifies: Anchor's
`Anchor-Signature`, Deck's Standard Webhooks headers (the `standardwebhooks` package, as
`relay.providers.deck` checks them), a bearer token for Tabstack, and for a generic source its
bearer token and/or HMAC header. Pure but for reading the event file, and `post`, which sends
the request with httpx and says what a refusal means. A secret only ever goes into the request,
never into a message of this module.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from relay.config import AnchorSource, Config, DeckSource, GenericSource, TabstackSource
from relay.errors import ConfigError
from relay.providers.anchor import signing_keys
from relay.providers.base import hmac_hex
from relay.render.formats.text import inert
from relay.samples import SAMPLES


@dataclass(frozen=True, slots=True)
class Request:
    """What to POST to `/hooks/{source}`."""

    source: str
    body: bytes
    headers: dict[str, str]
    event_id: str  # the id relay will dedup on (a Tabstack run's id)


def sample_names() -> list[str]:
    """Every shipped sample, as `provider/stem`."""
    return sorted(
        f"{folder.name}/{file.stem}"
        for folder in SAMPLES.iterdir()
        if folder.is_dir()
        for file in folder.iterdir()
        if file.suffix in (".json", ".sse")
    )


def find_event(name: str) -> Path:
    """The file a SAMPLE|FILE argument names: an existing path, else a shipped sample."""
    given = Path(name)
    if given.is_file():
        return given
    names = sample_names()
    wanted = name.removesuffix(".json").removesuffix(".sse")
    found = [n for n in names if n == wanted or n.split("/", 1)[1] == wanted]
    if len(found) != 1:
        why = f"'{name}' names {len(found)} samples" if found else f"no file or sample '{name}'"
        raise ConfigError([f"{why}; samples: {', '.join(found or names)}"])
    provider, stem = found[0].split("/", 1)
    return next(p for p in (SAMPLES / provider).iterdir() if p.stem == stem)


def _kind_of(path: Path, body: bytes) -> str:
    if path.suffix == ".sse":
        return "tabstack"
    if path.parent.parent == SAMPLES:
        return path.parent.name
    try:
        obj = json.loads(body)
    except ValueError:
        raise ConfigError([f"{path}: not valid JSON"]) from None
    return "deck" if isinstance(obj, dict) and obj.get("object") == "event" else "anchor"


def choose_source(config: Config, path: Path, body: bytes, source: str | None) -> str:
    """The configured source to send to: `source` if given, else the first of the event's kind."""
    if source is not None:
        if source not in config.sources:
            raise ConfigError([f"no source named '{source}' is configured"])
        return source
    kind = _kind_of(path, body)
    for name, model in config.sources.items():
        if model.provider == kind:
            return name
    raise ConfigError([f"{path.name} is a {kind} event but no {kind} source is configured"])


def build_request(
    config: Config, source: str, path: Path, now: float, *, keep_id: bool = False
) -> Request:
    """The signed request that delivers the event in `path` to `source`, as of `now`."""
    model = config.sources[source]
    body = path.read_bytes()
    fresh = secrets.token_hex(4)
    if isinstance(model, TabstackSource):
        token = _required(model.token.get_secret_value() if model.token else None, source, "token")
        run_id = path.stem if keep_id else f"{path.stem}-{fresh}"
        headers = {
            "Content-Type": "text/event-stream",
            "Authorization": f"Bearer {token}",
            "X-Relay-Run-Id": run_id,
        }
        return Request(source, body, headers, run_id)
    obj = _json_object(path, body)
    id_path = model.id_path if isinstance(model, GenericSource) else "id"
    event_id = str(_dig(obj, id_path) or "")
    if not keep_id:
        event_id = f"{event_id or 'evt'}-{fresh}"
        _put(obj, id_path, event_id)
        body = json.dumps(obj, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json", **_signed(model, source, obj, body, now)}
    return Request(source, body, headers, event_id)


@dataclass(frozen=True, slots=True)
class Answer:
    """What relay answered: its status and body, and for a failure, what it means."""

    url: str
    status: int | None  # None: the request did not arrive
    text: str
    problem: str | None


def post(request: Request, base_url: str) -> Answer:
    """POST the request to `{base_url}/hooks/{source}`."""
    url = f"{base_url.rstrip('/')}/hooks/{request.source}"
    try:
        got = httpx.post(url, content=request.body, headers=request.headers, timeout=30.0)
    except httpx.HTTPError as exc:
        name = type(exc).__name__
        return Answer(url, None, "", f"could not post to {url}: {name}")
    shown = inert(got.text[:2000].strip())  # relay answers one line of JSON; a proxy may not
    if got.is_success:
        return Answer(url, got.status_code, shown, None)
    return Answer(
        url,
        got.status_code,
        shown,
        f"{got.status_code}: {refusal(got.status_code, request.source)}",
    )


def refusal(status: int, source: str) -> str:
    """What a non-2xx answer to a sent event means, for the person who sent it."""
    if status == 401:
        return (
            "relay refused the signature or token: is the secret in this config (and its "
            "environment) the one the running relay verifies with?"
        )
    if status == 404:
        return f"relay has no source named '{source}' (or no /hooks at this URL)"
    return "relay did not accept the event"


def _signed(
    model: AnchorSource | DeckSource | GenericSource, source: str, obj: dict[str, Any],
    body: bytes, now: float,
) -> dict[str, str]:  # fmt: skip
    ts = str(int(now))
    if isinstance(model, AnchorSource):
        current = _required(_first(model.secrets), source, "secret")
        key = signing_keys([current], "hex" if model.key_encoding == "hex" else "utf8")[0]
        digest = hmac_hex(key, b"v0:" + ts.encode() + b":" + body)
        return {
            "User-Agent": "Anchor-Webhooks/1.0",
            "Anchor-Event": str(obj.get("type", "")),
            "Anchor-Delivery-Id": secrets.token_hex(16),
            "Anchor-Timestamp": ts,
            "Anchor-Signature": f"t={ts},v1={digest}",
        }
    if isinstance(model, DeckSource):
        current = _required(_first(model.secrets), source, "secret")
        msg_id = "msg_" + hashlib.sha256(body).hexdigest()[:24]
        when = datetime.fromtimestamp(int(ts), tz=UTC)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": ts,
            "webhook-signature": Webhook(current).sign(msg_id, when, body.decode()),
        }
    token = model.token.get_secret_value() if model.token else None
    secret = _first(model.secrets)
    if not token and not secret:
        raise ConfigError([f"sources.{source}: no secret or token configured to sign with"])
    headers: dict[str, str] = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if secret:
        headers[model.signature_header] = model.signature_prefix + hmac_hex(secret.encode(), body)
    if model.timestamp_header:
        headers[model.timestamp_header] = ts
    return headers


def _first(values: list[Any]) -> str | None:
    """The current secret: the first non-empty one (the others are kept while rotating)."""
    for value in values:
        if value.get_secret_value():
            return str(value.get_secret_value())
    return None


def _required(value: str | None, source: str, what: str) -> str:
    if not value:
        raise ConfigError(
            [f"sources.{source}: no {what} configured to sign with (is its variable set?)"]
        )
    return value


def _json_object(path: Path, body: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(body)
    except ValueError:
        raise ConfigError([f"{path}: not valid JSON"]) from None
    if not isinstance(obj, dict):
        raise ConfigError([f"{path}: the event must be a JSON object"])
    return obj


def _dig(obj: dict[str, Any], dotted: str) -> Any:
    value: Any = obj
    for key in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _put(obj: dict[str, Any], dotted: str, value: str) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        child = obj.get(key)
        if not isinstance(child, dict):
            child = obj[key] = {}
        obj = child
    obj[last] = value
