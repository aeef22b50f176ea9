"""The console's session: a cookie signed with a key derived from the admin token.

The cookie holds only a random CSRF token, whether the holder logged in, and when it was
signed (`itsdangerous`). Every replica derives the same key from the same `RELAY_ADMIN_TOKEN`,
so a session opened on one is good on the others; a new admin token ends every session. The
admin token itself is never in the cookie, on a page or in a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "relay_console"
MAX_AGE = 12 * 3600  # seconds a login lasts
_PURPOSE = b"relay console session v1"


@dataclass(frozen=True, slots=True)
class Session:
    """What a console cookie says once its signature checked out."""

    csrf: str
    authenticated: bool


def session_key(admin_token: str) -> bytes:
    """The signing key: derived from the admin token, never the token itself (a cookie signed
    with it reveals nothing about the token, and the key serves no other purpose)."""
    return hmac.new(admin_token.encode(), _PURPOSE, hashlib.sha256).digest()


def token_matches(admin_token: str, given: str) -> bool:
    """Constant-time comparison of a typed token with the admin token."""
    return hmac.compare_digest(given.encode(), admin_token.encode())


def csrf_matches(session: Session, given: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), session.csrf.encode())


class Sessions:
    """Signs and reads console cookies with the key of one admin token."""

    def __init__(self, admin_token: str) -> None:
        self._signer = URLSafeTimedSerializer(
            session_key(admin_token),
            salt="relay-console",
            signer_kwargs={"digest_method": hashlib.sha256},
        )

    def new(self, *, authenticated: bool) -> Session:
        """A fresh session with a fresh CSRF token (a login never keeps the one before it)."""
        return Session(csrf=secrets.token_urlsafe(32), authenticated=authenticated)

    def dump(self, session: Session) -> str:
        return self._signer.dumps({"c": session.csrf, "a": session.authenticated})

    def load(self, cookie: str | None) -> Session | None:
        """The session a cookie holds; None when absent, forged, malformed or expired."""
        if not cookie:
            return None
        try:
            data = self._signer.loads(cookie, max_age=MAX_AGE)
        except BadSignature:  # SignatureExpired is one
            return None
        if not isinstance(data, dict):
            return None
        csrf, authenticated = data.get("c"), data.get("a")
        if not isinstance(csrf, str) or not csrf or not isinstance(authenticated, bool):
            return None
        return Session(csrf=csrf, authenticated=authenticated)
