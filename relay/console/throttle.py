"""Failed console logins, counted per client: after `limit` failures within `window` seconds a
client is refused (`429`) until the oldest of them leaves the window.

The failures are kept by the store (relay.store.logins), which every replica shares: N replicas
behind one load balancer allow a guesser the same budget as one, wherever each try lands, and a
restart does not reset it. The clock is the wall clock, the one replicas share. The client is
the connection's address (relay does not read X-Forwarded-For, see SECURITY.md): behind a
proxy, every client shares the proxy's address and therefore one budget, which slows a guesser
as much and can delay the operator by at most `window`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from relay.store import Store


@dataclass
class LoginThrottle:
    store: Store
    limit: int = 5
    window: float = 300.0
    clock: Callable[[], float] = field(default=time.time)

    async def wait(self, client: str) -> float:
        """Seconds before `client` may try again; 0 when it may now."""
        now = self.clock()
        latest = await self.store.login_failures(client, now - self.window, self.limit)
        if len(latest) < self.limit:
            return 0.0
        return max(1.0, min(latest) + self.window - now)

    async def failed(self, client: str) -> None:
        now = self.clock()
        await self.store.login_failed(client, now, now - self.window)

    async def succeeded(self, client: str) -> None:
        await self.store.login_succeeded(client)
