"""The store's part in the console's login throttle (relay.console.throttle): the failed logins
of each client address, in one table every replica shares, so that replicas behind one load
balancer allow a guesser one budget between them, not one each. Rows older than the throttle's
window are forgotten as new failures arrive.
"""

from __future__ import annotations

from relay.store.db import Db


def failures(db: Db, client: str, since: float, limit: int) -> list[float]:
    """When `client`'s latest failures after `since` happened, at most `limit` of them."""
    return [
        float(at)
        for (at,) in db.all(
            "SELECT at FROM login_failures WHERE client=? AND at > ? ORDER BY at DESC LIMIT ?",
            (client, since, limit),
        )
    ]


def failed(db: Db, client: str, now: float, forget_before: float) -> None:
    """One more failure of `client`; every failure before `forget_before` is forgotten."""
    db.run("DELETE FROM login_failures WHERE at < ?", (forget_before,))
    db.run("INSERT INTO login_failures (client, at) VALUES (?, ?)", (client, now))


def succeeded(db: Db, client: str) -> None:
    """`client` logged in: its failures no longer count."""
    db.run("DELETE FROM login_failures WHERE client=?", (client,))
