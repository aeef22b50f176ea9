"""Generic JSON webhooks: any platform relay has no adapter for, mapped by configured paths.

Authentication is never open by accident: a source needs an HMAC secret, a bearer token or both,
and every mechanism that is configured must pass. The signature is the hex HMAC-SHA256 of the
raw body (GitHub style, `X-Signature: sha256=<hex>`); several secrets may be configured for
rotation. `timestamp_header`, when set, only bounds the age of a request: the timestamp is not
part of the signed content, so it catches stale retries, not a deliberate replay.

Events are found by dotted paths (`relay.event.dig`). A body without an id gets one derived from
its SHA-256, so a sender's identical retry is recognised as a duplicate.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any, ClassVar

from relay.config import GenericSource
from relay.errors import MalformedRequest, Unauthorized
from relay.event import Event, dig, parse_time
from relay.providers.base import (
    HEX_DIGEST,
    MAX_JSON_DEPTH,
    Headers,
    bearer_ok,
    check_timestamp,
    hmac_hex,
    identity_text,
    json_object,
    lower_keys,
)


class GenericProvider:
    kind: ClassVar[str] = "generic"

    def __init__(
        self,
        source: str,
        id_path: str = "id",
        type_path: str = "type",
        data_path: str | None = None,
        created_path: str | None = None,
        text_path: str | None = None,
        secrets: Sequence[str] = (),
        signature_header: str = "X-Signature",
        signature_prefix: str = "sha256=",
        token: str | None = None,
        timestamp_header: str | None = None,
        tolerance_s: float = 300,
        max_json_depth: int = MAX_JSON_DEPTH,
    ) -> None:
        self.source = source
        self.max_json_depth = max_json_depth
        self.id_path = id_path
        self.type_path = type_path
        self.data_path = data_path
        self.created_path = created_path
        self.text_path = text_path
        self.signature_header = signature_header
        self.signature_prefix = signature_prefix
        self.timestamp_header = timestamp_header
        self.tolerance_s = tolerance_s
        self._keys = [s.encode() for s in secrets if s]
        self._token = token or None

    @classmethod
    def from_config(cls, name: str, source: GenericSource, max_json_depth: int) -> GenericProvider:
        return cls(
            name,
            id_path=source.id_path,
            type_path=source.type_path,
            data_path=source.data_path,
            created_path=source.created_path,
            text_path=source.text_path,
            secrets=[s.get_secret_value() for s in source.secrets],
            signature_header=source.signature_header,
            signature_prefix=source.signature_prefix,
            token=source.token.get_secret_value() if source.token else None,
            timestamp_header=source.timestamp_header,
            tolerance_s=source.tolerance,
            max_json_depth=max_json_depth,
        )

    def verify(self, headers: Headers, body: bytes, now: float) -> None:
        h = lower_keys(headers)
        if not self._keys and self._token is None:
            raise Unauthorized(f"source '{self.source}' has no secret or token configured")
        if self.timestamp_header:
            raw_ts = h.get(self.timestamp_header.lower())
            if raw_ts is None:
                raise Unauthorized(f"missing {self.timestamp_header} header")
            check_timestamp(raw_ts, now, self.tolerance_s, self.timestamp_header)
        if self._token is not None and not bearer_ok(h, self._token):
            raise Unauthorized("missing or wrong Authorization: Bearer token")
        if self._keys:
            self._check_signature(h.get(self.signature_header.lower()), body)

    def _check_signature(self, header: str | None, body: bytes) -> None:
        if header is None:
            raise Unauthorized(f"missing {self.signature_header} header")
        given = header.strip()
        prefix = self.signature_prefix
        if prefix and given[: len(prefix)].lower() == prefix.lower():
            given = given[len(prefix) :]
        if not HEX_DIGEST.fullmatch(given):
            raise Unauthorized(
                f"{self.signature_header} must be '{prefix}' followed by 64 hex digits"
            )
        digest = given.lower().encode()
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(digest, hmac_hex(key, body).encode())
        if not matched:
            raise Unauthorized(f"{self.signature_header} does not match the body")

    def parse(self, headers: Headers, body: bytes) -> list[Event]:
        obj = json_object(body, self.max_json_depth)
        return [
            Event(
                source=self.source,
                provider=self.kind,
                id=self._id(obj, body),
                type=self._type(obj),
                data=self._data(obj),
                created=parse_time(dig(obj, self.created_path)) if self.created_path else None,
                text=self._text(obj),
                envelope=obj,
                body=body,
            )
        ]

    def _id(self, obj: dict[str, Any], body: bytes) -> str:
        value = dig(obj, self.id_path)
        if value is None or value == "":
            return "sha256:" + hashlib.sha256(body).hexdigest()
        if isinstance(value, str):
            return identity_text(f"`{self.id_path}`", value)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise MalformedRequest(
            f"`{self.id_path}` must be a string or an integer, got {type(value).__name__}"
        )

    def _type(self, obj: dict[str, Any]) -> str:
        value = dig(obj, self.type_path)
        if not isinstance(value, str) or not value.strip():
            found = "nothing" if value is None else type(value).__name__
            raise MalformedRequest(f"`{self.type_path}` must be a non-empty string, got {found}")
        return identity_text(f"`{self.type_path}`", value)

    def _data(self, obj: dict[str, Any]) -> dict[str, Any]:
        if self.data_path is None:
            return obj
        value = dig(obj, self.data_path)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise MalformedRequest(
                f"`{self.data_path}` must be an object, got {type(value).__name__}"
            )
        return value

    def _text(self, obj: dict[str, Any]) -> str | None:
        if self.text_path is None:
            return None
        value = dig(obj, self.text_path)
        return value if isinstance(value, str) else None
