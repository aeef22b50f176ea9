"""What a delivery does in its conversation, decided at send time, and what it leaves behind.
Pure.

The router decided, per message, a `Step` (the thread key it belongs to, the message key it
updates or registers, its repeat fingerprint). When the message is claimed for delivery the
store hands over the conversation messages those keys name (`MessageRef`s): `move` turns the
step and those refs into what to send (a post, a reply under the thread's parent, an edit of a
registered message, a repeat counter on the first occurrence) or into nothing at all, when an
older event would overwrite a newer state. Once the chat answered, `effects` says what the
conversation now remembers: the keys a new message is registered under, the newest state of an
updated one, a message the chat no longer has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from relay.conversation.repeat import with_counter
from relay.records import (
    DeliveryResult,
    Effect,
    Forget,
    MessageRef,
    OutboxRow,
    Outcome,
    Outgoing,
    Reason,
    Remember,
    Step,
    Touch,
)


class MoveKind(StrEnum):
    POST = "post"
    REPLY = "reply"
    UPDATE = "update"
    REPEAT = "repeat"
    SUPERSEDED = "superseded"  # nothing is sent: the message holds a newer state already


@dataclass(frozen=True, slots=True)
class Move:
    kind: MoveKind
    out: Outgoing
    key: str | None = None  # the message key updated (update, repeat)
    count: int | None = None  # the repeat count after this one


def move(row: OutboxRow, refs: Mapping[str, MessageRef], now: float) -> Move:
    """What delivering `row` does, given the live conversation messages its step names."""
    step = row.step
    if step is None:
        return Move(MoveKind.POST, Outgoing(row.message))
    post = Outgoing(row.message, thread=step.thread, buttons=step.buttons, row_id=row.id)
    if step.repeat is not None and (ref := refs.get(step.repeat)) is not None:
        count = ref.count + 1
        counted = with_counter(row.message, count, ref.first_at, now)
        return Move(MoveKind.REPEAT, replace(post, message=counted, update=ref), step.repeat, count)
    if step.update is not None and (ref := refs.get(step.update)) is not None:
        if step.order_at is not None and ref.order_at is not None and step.order_at < ref.order_at:
            return Move(MoveKind.SUPERSEDED, post)
        return Move(MoveKind.UPDATE, replace(post, update=ref), step.update)
    if step.thread is not None and (parent := refs.get(step.thread)) is not None:
        return Move(MoveKind.REPLY, replace(post, reply_to=parent, broadcast=step.broadcast))
    return Move(MoveKind.POST, post)


def effects(
    row: OutboxRow,
    done: Move,
    result: DeliveryResult,
    refs: Mapping[str, MessageRef],
    now: float,
) -> tuple[tuple[Effect, ...], DeliveryResult]:
    """What the conversation remembers after the chat answered `result`, and the result as the
    worker should record it (an edit of a message the chat no longer has becomes a retry that
    posts it anew)."""
    step = row.step
    if step is None:
        return (), result
    if result.outcome is not Outcome.SENT:
        if result.reason is Reason.NOT_FOUND and done.key is not None:
            # the message to update was deleted: forget it; the retry posts anew
            forget = (Forget(done.key), *_close(step, done, refs))
            return forget, replace(result, outcome=Outcome.RETRY, retry_after=0.0)
        return (), result
    if done.kind in (MoveKind.UPDATE, MoveKind.REPEAT):
        assert done.key is not None
        return (Touch(done.key, step.order_at, done.count), *_close(step, done, refs)), result
    if result.ts is None:
        return (), result  # an incoming webhook: no ts, nothing to thread onto or update
    ref = MessageRef(result.channel_id, result.ts, step.order_at, 1, now, now)
    keys: list[tuple[str, float]] = []
    if done.kind is MoveKind.POST and step.thread is not None:
        keys.append((step.thread, now + step.ttl))
    # a resolution that found no open request to update is not itself an open request
    if step.update is not None and step.update not in (step.thread, step.closes):
        keys.append((step.update, now + step.ttl))
    if step.register is not None:
        keys.append((step.register, now + step.ttl))
    if step.opens is not None:
        keys.append((step.opens, now + step.ttl))
    if step.repeat is not None:
        keys.append((step.repeat, now + step.repeat_interval))
    remembered: list[Effect] = [Remember(key, ref, expires) for key, expires in keys]
    if done.kind is MoveKind.REPLY and step.thread is not None:
        remembered.append(Touch(step.thread, None, None, now + step.ttl))
    return tuple(remembered), result


def _close(step: Step, done: Move, refs: Mapping[str, MessageRef]) -> tuple[Effect, ...]:
    """Free the slot `step.closes` if it still names the message this move updated: that
    request is resolved (or gone), so it is no longer its session's open request."""
    if step.closes is None or done.kind is not MoveKind.UPDATE or done.out.update is None:
        return ()
    slot = refs.get(step.closes)
    if slot is not None and slot.ts == done.out.update.ts:
        return (Forget(step.closes),)
    return ()
