"""The typed records that stages hand each other, and their stored (JSON) form.

The router hands the outbox a `NewMessage` per destination: the rendered `Message`
(`relay.messages`: a chat-neutral card, or Slack Block Kit), the `Step`
that says how it joins its conversation, and whether it is muted or parked for a digest. The
worker reads an `OutboxRow` back, with the `MessageRef`s of the conversation it needs, and
returns a `Settlement`: the row's new state and what the conversation now remembers. Closed
enums name every status and reason (they double as metric labels).

Nothing here does I/O; `to_json`/`from_json` give the form the stores keep, which is the form
relay has always written (old rows read back unchanged).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from relay.event import Event, JsonValue
from relay.messages import Message

# what a chat's message format is made of: built and checked by the render stage, carried as it
# is by every later one
JsonObject = dict[str, JsonValue]


class Status(StrEnum):
    """Where an outbox row is in its life."""

    PENDING = "pending"
    INFLIGHT = "inflight"
    SENT = "sent"
    DEAD = "dead"
    MUTED = "muted"  # recorded during quiet hours, never delivered
    SILENCED = "silenced"  # recorded while a silence matched (relay.silences), never delivered


class Acceptance(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"


class Outcome(StrEnum):
    """What one delivery attempt came to."""

    SENT = "sent"
    RETRY = "retry"
    PERMANENT = "permanent"


class Reason(StrEnum):
    """Why a delivery ended as it did, or why a message went dead; a closed set, used as the
    `reason` label of the delivery and dead-letter metrics."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    AUTH = "auth"
    CHANNEL = "channel"
    INVALID_PAYLOAD = "invalid_payload"
    NOT_FOUND = "not_found"  # the message to update (or thread onto) is gone or not ours
    UNKNOWN = "unknown"
    # decided by relay rather than answered by a chat
    SUPERSEDED = "superseded"  # an older event did not overwrite a newer state (not sent)
    MAX_AGE = "max_age"  # still failing when older than `store.max_age`
    DESTINATION_GONE = "destination_gone"  # a reload removed the destination
    # this replica could not renew its heartbeat in time and gave the send up, before another
    # replica could take it over (see relay.delivery.heartbeat)
    FENCED = "fenced"


class Recording(StrEnum):
    """What became of writing an attempt's outcome on its row."""

    RECORDED = "recorded"
    # the row is no longer this process's claim (another replica presumed it dead and took it
    # over, or its lease expired): left as the new holder has it
    LOST = "lost"


# ---------------------------------------------------------------- conversations


@dataclass(frozen=True, slots=True)
class Step:
    """How one outbox row joins its conversation (see `relay.conversation.steps`).

    Rows stored by an older relay lack the newer fields, which then take their defaults, and an
    older relay reading a newer row ignores the fields it does not know (`from_json`).
    """

    thread: str | None = None
    update: str | None = None
    register: str | None = None
    # a slot naming the latest open request of a session: this message takes it once sent
    opens: str | None = None
    # that slot is freed once this message's update lands on the message the slot names
    closes: str | None = None
    broadcast: bool = False
    order_at: float | None = None
    ttl: float = 7 * 86400.0
    repeat: str | None = None
    repeat_interval: float = 0.0
    # the Slack buttons its message carries (`mute`, `ack`: relay.interactions), and the event's
    # main id (`data` path, value) a Mute scopes its silence to when there is no message key
    buttons: tuple[str, ...] = ()
    main: tuple[str, str] | None = None

    @property
    def joins(self) -> bool:
        """False for a plain flat post that needs nothing from the store."""
        return any((self.thread, self.update, self.register, self.opens, self.repeat))

    @property
    def kept(self) -> bool:
        """Whether a row keeps this step: it joins a conversation or carries buttons."""
        return self.joins or bool(self.buttons)

    def keys(self) -> tuple[str, ...]:
        """The message keys whose messages a delivery of this step may need to know."""
        found = (self.repeat, self.update, self.thread, self.closes)
        return tuple(dict.fromkeys(k for k in found if k is not None))

    def to_json(self) -> JsonObject:
        # each field read directly: `asdict` deep-copies, and this runs for every message routed
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k in self.__dataclass_fields__
            if (v := getattr(self, k)) not in (None, False, ())
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any] | None) -> Step | None:
        if not obj:
            return None
        # JSON has no tuples: the lists of `buttons` and `main` are read back as tuples
        fields: dict[str, Any] = {
            k: tuple(obj[k]) if isinstance(obj[k], list) else obj[k]
            for k in cls.__dataclass_fields__
            if k in obj
        }
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A message a chat accepted, found again by its key (thread parent, update or repeat)."""

    channel_id: str | None
    ts: str
    order_at: float | None
    count: int
    first_at: float
    last_at: float


@dataclass(frozen=True, slots=True)
class Remember:
    """Register (or replace) the message under `key` until `expires_at`."""

    key: str
    ref: MessageRef
    expires_at: float


@dataclass(frozen=True, slots=True)
class Touch:
    """A registered message was used again: its newest state's time, repeat count, last use."""

    key: str
    order_at: float | None
    count: int | None
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class Forget:
    """The message under `key` is gone (deleted in the chat): forget it."""

    key: str


Effect = Remember | Touch | Forget


# ---------------------------------------------------------------- a delivery attempt


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    outcome: Outcome
    reason: Reason
    retry_after: float | None = None
    channel_id: str | None = None
    ts: str | None = None
    detail: str | None = None

    @classmethod
    def retry_unknown(cls, detail: str) -> DeliveryResult:
        """For a sender that raised instead of answering: retry, the cause is unknown."""
        return cls(Outcome.RETRY, Reason.UNKNOWN, detail=detail)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message for one destination, and where it goes in its conversation.

    `reply_to`: post it as a reply in that message's thread (`broadcast`: also in the channel).
    `update`: edit that message instead of posting a new one.
    `thread`: the conversation the message belongs to (its thread key), for chats that thread
    by a key of their own choosing rather than by the parent message (Google Chat), or that
    start a thread with the first message (Discord forum channels).
    A chat that cannot reply or update does what it can instead (its sender says what).
    """

    message: Message
    reply_to: MessageRef | None = None
    broadcast: bool = False
    update: MessageRef | None = None
    thread: str | None = None
    # Slack buttons (relay.interactions) and the outbox row their clicks refer to
    buttons: tuple[str, ...] = ()
    row_id: int | None = None


# ---------------------------------------------------------------- the outbox


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """Where a grouped message waits for its digest, and the route's grouping settings."""

    route: str
    key: str
    wait: float
    interval: float
    max_items: int
    show: int


@dataclass(frozen=True, slots=True)
class NewMessage:
    """An outbox row to create: a rendered message for one destination.

    `step` says how it joins a conversation; `muted` records it without ever delivering it;
    `group` parks it for a digest instead of the outbox.
    """

    destination: str
    pace_key: str
    template: str
    message: Message
    step: Step | None = None
    muted: bool = False
    group: GroupSpec | None = None
    silence: str | None = None  # the id of the silence that holds it back: never delivered


@dataclass(frozen=True, slots=True)
class Received:
    """An accepted event in the inbox, waiting to be routed and rendered; `seq` orders them."""

    seq: int
    event: Event
    received_at: float


@dataclass(frozen=True, slots=True)
class Routed:
    """An inbox event and the messages routing and rendering made of it."""

    received: Received
    messages: tuple[NewMessage, ...]
    # for history: the route of each message, in order, and the routing trace as JSON text
    routes: tuple[str, ...] = ()
    trace: str = "{}"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    event_source: str
    event_id: str
    event_type: str
    destination: str
    pace_key: str
    template: str
    message: Message
    status: Status
    attempts: int
    created_at: float
    next_attempt_at: float
    last_reason: str | None
    last_error: str | None
    step: Step | None = None
    silence_id: str | None = None


@dataclass(frozen=True, slots=True)
class Known:
    """A conversation message the store remembers, and until when."""

    ref: MessageRef
    expires_at: float


@dataclass(frozen=True, slots=True)
class Claim:
    """A run of one pacing key's messages this worker now delivers, one after another in the
    order they were accepted, with the conversation messages they may need (`known`, by key)."""

    rows: tuple[OutboxRow, ...]
    known: Mapping[str, Known] = field(default_factory=dict)

    @property
    def row(self) -> OutboxRow:
        """The first message of the run: the key's head."""
        return self.rows[0]

    @property
    def refs(self) -> dict[str, MessageRef]:
        return {key: known.ref for key, known in self.known.items()}


@dataclass(frozen=True, slots=True)
class ClaimRound:
    """What one claim found: the rows claimed, and when a paced key may send next."""

    claimed: tuple[Claim, ...]
    paced_wait: float | None = None
    next_due: float | None = None  # when the earliest pending head becomes due


@dataclass(frozen=True, slots=True)
class Settlement:
    """What one delivery attempt leaves behind: the row's new status and what the
    conversation remembers; `pause` (seconds) stops the row's key after a rate limit."""

    row_id: int
    pace_key: str
    status: Status
    reason: Reason
    at: float  # when the attempt ended
    error: str | None = None
    next_attempt_at: float | None = None  # PENDING: when to try again
    channel_id: str | None = None
    ts: str | None = None
    effects: tuple[Effect, ...] = ()
    pause: float | None = None
    took: float | None = None  # seconds the chat took to answer (None: nothing was sent)


# ---------------------------------------------------------------- digests and statistics


@dataclass(frozen=True, slots=True)
class DigestItem:
    id: int
    event_source: str
    event_id: str
    event_type: str
    template: str
    message: Message
    created_at: float


@dataclass(frozen=True, slots=True)
class DigestBatch:
    """A group whose digest is due, with the items waiting in it (oldest first)."""

    group_id: int
    route: str
    group_key: str
    destination: str
    pace_key: str
    show: int
    items: tuple[DigestItem, ...]


@dataclass(frozen=True, slots=True)
class InboxStats:
    waiting: int
    oldest_at: float | None


@dataclass(frozen=True, slots=True)
class DestinationStats:
    destination: str
    pending: int
    inflight: int
    dead: int
    sent: int
    oldest_pending_at: float | None
    muted: int = 0
    digesting: int = 0
    silenced: int = 0
