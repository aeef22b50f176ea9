"""The `sources:` of the config: one model per provider, told apart by `provider:`."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from relay.config.values import HEX, Seconds, Strict, blank_is_none, seconds, secret_list

# ---------------------------------------------------------------- sources


class AnchorSource(Strict):
    provider: Literal["anchor"]
    secrets: list[SecretStr] = []
    tolerance: Seconds = 120.0
    key_encoding: Literal["utf8", "hex", "both"] = "both"

    _secrets = field_validator("secrets", mode="before")(secret_list)
    _tolerance = field_validator("tolerance", mode="before")(seconds)

    @model_validator(mode="after")
    def _hex_secrets(self) -> AnchorSource:
        if self.key_encoding == "hex":
            for secret in self.secrets:
                if not HEX.fullmatch(secret.get_secret_value()):
                    raise ValueError("key_encoding 'hex' needs secrets of hex digits")
        return self


class DeckSource(Strict):
    provider: Literal["deck"]
    secrets: list[SecretStr] = []
    tolerance: Seconds = 300.0

    _secrets = field_validator("secrets", mode="before")(secret_list)
    _tolerance = field_validator("tolerance", mode="before")(seconds)

    @field_validator("secrets")
    @classmethod
    def _whsec(cls, value: list[SecretStr]) -> list[SecretStr]:
        for secret in value:
            text = secret.get_secret_value()
            if not text.startswith("whsec_"):
                raise ValueError("a Deck secret starts with 'whsec_'")
            try:  # decoded as the standardwebhooks package does
                key = base64.b64decode(text.removeprefix("whsec_") + "==")
            except (binascii.Error, ValueError):
                key = b""
            if not key:
                raise ValueError("a Deck secret is 'whsec_' followed by base64")
        return value


class TabstackSource(Strict):
    provider: Literal["tabstack"]
    token: SecretStr | None = None
    api_key: SecretStr | None = None
    base_url: str = "https://api.tabstack.ai/v1"
    max_stream_seconds: Seconds = 3600.0
    max_stream_bytes: Annotated[int, Field(gt=0)] = 64 * 1024 * 1024
    progress_interval: Seconds | None = 10.0  # live `run.progress` events; null turns them off

    _max_stream_seconds = field_validator("max_stream_seconds", "progress_interval", mode="before")(
        seconds
    )

    _blank = field_validator("token", "api_key", mode="before")(blank_is_none)


class GenericSource(Strict):
    provider: Literal["generic"]
    id_path: str = "id"
    type_path: str = "type"
    data_path: str | None = None
    created_path: str | None = None
    text_path: str | None = None
    secrets: list[SecretStr] = []
    signature_header: str = "X-Signature"
    signature_prefix: str = "sha256="
    token: SecretStr | None = None
    timestamp_header: str | None = None
    tolerance: Seconds = 300.0

    _secrets = field_validator("secrets", mode="before")(secret_list)
    _tolerance = field_validator("tolerance", mode="before")(seconds)
    _token = field_validator("token", mode="before")(blank_is_none)


Source = Annotated[
    AnchorSource | DeckSource | TabstackSource | GenericSource, Field(discriminator="provider")
]
