"""What a run of one key's messages knows of its conversation while the worker sends it.

A claim hands the worker a run of consecutive messages of one pacing key together with the
conversation messages they may need, read once. Each message sent in the run may change what
the next one needs (the first post of a session is the parent the next replies under), so the
worker applies each delivery's effects here, exactly as the store applies them when the
outcome is recorded (`relay.store.outbox`), and the next message's move reads this instead of
going back to the store. Only the key's own claim holder changes its conversation messages, so
nothing else can change them during the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from relay.records import Effect, Forget, Known, MessageRef, Remember, Touch


class Memory:
    """The conversation messages of one run, by key."""

    def __init__(self, known: Mapping[str, Known]) -> None:
        self._known = dict(known)

    @property
    def known(self) -> Mapping[str, Known]:
        return self._known

    def refs(self, now: float) -> dict[str, MessageRef]:
        """The messages still remembered at `now` (the store forgets expired ones)."""
        return {key: k.ref for key, k in self._known.items() if k.expires_at > now}

    def apply(self, effects: Iterable[Effect], now: float) -> None:
        """What a delivery left behind, as `relay.store.outbox` records it."""
        for effect in effects:
            if isinstance(effect, Remember):
                self._known[effect.key] = Known(effect.ref, effect.expires_at)
            elif isinstance(effect, Touch):
                found = self._known.get(effect.key)
                if found is None:
                    continue  # the store's update finds no row either
                ref = found.ref
                order_at = ref.order_at
                if effect.order_at is not None:
                    order_at = (
                        effect.order_at if order_at is None else max(order_at, effect.order_at)
                    )
                count = ref.count if effect.count is None else effect.count
                expires_at = found.expires_at
                if effect.expires_at is not None:
                    expires_at = max(expires_at, effect.expires_at)
                touched = replace(ref, order_at=order_at, count=count, last_at=now)
                self._known[effect.key] = Known(touched, expires_at)
            elif isinstance(effect, Forget):
                self._known.pop(effect.key, None)
