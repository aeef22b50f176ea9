"""Failed console logins, counted per client: after `limit` failures within `window` seconds a
client is refused (`429`) until the oldest of them leaves the window.

Per process: each replica counts its own, so N replicas allow at most N times the limit. The
client is the connection's address (relay does not read X-Forwarded-For, see SECURITY.md):
behind a proxy, every client shares the proxy's address and therefore one budget, which slows
a guesser as much and can delay the operator by at most `window`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoginThrottle:
    limit: int = 5
    window: float = 300.0
    clock: Callable[[], float] = time.monotonic
    max_clients: int = 10_000  # bounded memory: the oldest client is forgotten first
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def wait(self, client: str) -> float:
        """Seconds before `client` may try again; 0 when it may now."""
        now = self.clock()
        failures = self._failures.get(client)
        if failures is None:
            return 0.0
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return 0.0
        if len(failures) < self.limit:
            return 0.0
        return max(1.0, failures[0] + self.window - now)

    def failed(self, client: str) -> None:
        if client not in self._failures and len(self._failures) >= self.max_clients:
            self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(client, deque(maxlen=self.limit)).append(self.clock())

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
