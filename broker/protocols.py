"""The narrow interfaces backends and balancers implement, and the data they exchange.

A client composes one `Queue` (durable storage and leasing) with one `Balancer` (which member of a
group gets a message, over the live members its `Registry` knows). Every resource is an async
context manager with ``aclose()``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

import msgspec

from broker.message import DeadLetter, Delivery, Envelope

__all__ = [
    "Balancer",
    "Candidate",
    "ChannelCallback",
    "Channels",
    "Clock",
    "Closing",
    "ComponentHealth",
    "DeadLetters",
    "Dispatcher",
    "GroupLifetimes",
    "GroupStats",
    "MemberInfo",
    "Queue",
    "Registry",
    "Resource",
    "RoutingStore",
    "Strategy",
    "StrategyFactory",
]


class MemberInfo(msgspec.Struct, frozen=True):
    """One live subscriber instance of a group, as the registry knows it.

    ``in_flight``, ``processed`` and ``failed`` are what the member reported at its last
    heartbeat, and ``last_seen`` is that heartbeat's time: read from the registry (`Client.members`,
    `Client.stats`) they lag by up to ``heartbeat_interval``. `Subscriber.info` overlays the
    member's own live counters.
    """

    id: str
    group: str
    topics: tuple[str, ...]
    weight: int = 1
    joined_at: float = 0.0
    last_seen: float = 0.0
    in_flight: int = 0
    processed: int = 0
    failed: int = 0


class Candidate(msgspec.Struct, frozen=True, gc=False):
    """A member a strategy may choose, with its load at the time of the choice."""

    id: str
    weight: int = 1
    outstanding: int = 0


class GroupStats(msgspec.Struct, frozen=True):
    """Counts of one topic as seen by one consumer group."""

    topic: str
    group: str
    queued: int
    in_flight: int
    delayed: int
    dead: int
    processed: int
    failed: int
    unattended: bool = False
    """No live member of the group handles the topic while messages wait (see `Client.stats`):
    a group nobody runs any more, retired after ``group_retention``."""


class ComponentHealth(msgspec.Struct, frozen=True):
    """Whether one part answered, and how fast."""

    name: str
    ok: bool
    latency_ms: float
    detail: str = ""


@runtime_checkable
class Clock(Protocol):
    """Where time comes from: wall-clock seconds. Tests inject a clock they can move."""

    def now(self) -> float: ...


class Strategy(Protocol):
    """Chooses one candidate for a message.

    ``candidates`` is never empty and is sorted by id. A strategy may keep its own position
    (round-robin, smooth weights) but reads load only from the candidates; one instance serves
    one group. A strategy that reads ``Candidate.outstanding`` sets a class attribute
    ``uses_load = True`` so the balancer fills it in.
    """

    def select(self, message: Envelope, candidates: Sequence[Candidate]) -> Candidate: ...


StrategyFactory = Callable[[random.Random | None], Strategy]
"""Builds one strategy instance (one per group) from an optional random source."""


class Resource(Protocol):
    """Something that holds connections or tasks and must be closed."""

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Closing:
    """Mixin: ``async with`` closes the object with its ``aclose()`` on exit."""

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class Registry(Resource, Protocol):
    """Live members per group, kept alive by heartbeats."""

    async def register(self, member: MemberInfo) -> None:
        """Add or replace a member; it is live from now until it stops heartbeating."""

    async def heartbeat(
        self, group: str, member: str, *, in_flight: int, processed: int, failed: int
    ) -> bool:
        """Refresh ``last_seen`` and counters in O(1); False if the member was evicted."""

    async def deregister(self, group: str, member: str) -> None:
        """Remove a member now (graceful leave)."""

    async def members(self, group: str) -> list[MemberInfo]:
        """The live members of ``group``, sorted by id."""

    async def set_weight(self, group: str, member: str, weight: int) -> bool:
        """Change a member's weight from the next message; False if it is unknown."""

    async def evict_expired(self) -> list[MemberInfo]:
        """Remove and return every member silent for longer than the heartbeat TTL."""


class Balancer(Resource, Protocol):
    """Decides which live member of a group handles each message."""

    @property
    def registry(self) -> Registry: ...

    @property
    def needs_load(self) -> bool:
        """Whether `assign` reads ``load`` (callers skip computing it otherwise)."""

    async def assign(
        self,
        group: str,
        topic: str,
        envelopes: Sequence[Envelope],
        load: Mapping[str, int],
    ) -> list[str | None]:
        """One member id per envelope (None when no live member handles ``topic``).

        ``load`` is the number of outstanding messages per member before these envelopes.
        """


class Dispatcher(Resource, Protocol):
    """Routes messages to members: the balancer's choice, stored by the queue.

    Every move of a message between members goes through here, so a backend that decides and
    stores in one atomic step (a Redis script) implements it directly; the memory backend
    composes a `Balancer` and a `Queue`.
    """

    async def dispatch(
        self,
        group: str,
        topic: str,
        envelopes: Sequence[Envelope],
        *,
        require_member: bool = False,
        fan_out: bool = True,
    ) -> int:
        """Give each envelope to one live member of ``group`` (or the group backlog); returns
        how many were placed on a live member. With ``require_member``, an envelope that finds
        no live member of ``group`` handling ``topic`` is not stored at all.

        ``fan_out`` says this is one group of a publish to every group on ``topic``: a backend
        whose producers cache the topic's groups may then also reach groups declared since the
        caller read them. Without it the envelopes go to ``group`` only (tasks, requests)."""

    async def reroute(self, group: str, envelopes: Sequence[Envelope]) -> None:
        """Dispatch messages of any topics again (replayed dead letters)."""

    async def handover(self, group: str, member: str, *, leased: bool) -> int:
        """Close a member's inbox and give what it held to live members; returns how many.

        ``leased`` (a dead member) moves its leased messages too; without it (a member
        leaving gracefully) they stay until acked or released.
        """

    async def release(self, delivery: Delivery) -> bool:
        """Give a leased message back unprocessed (no attempt counted), to another member."""

    async def expire_leases(self) -> int:
        """Move every message whose lease ran out to a live member; returns how many."""

    async def drain_backlog(self, group: str) -> int:
        """Dispatch messages that waited for a member of ``group``; returns how many went."""


class DeadLetters(Protocol):
    """Messages that will not be delivered again."""

    async def dead_letters(self, group: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters, of one group or all."""

    async def take_dead(self, ids: Sequence[str]) -> list[DeadLetter]:
        """Remove and return the dead letters with these message ids (to replay or purge)."""


class GroupLifetimes(Protocol):
    """Which groups still run, so that a group nobody runs any more stops receiving."""

    async def mark_alive(self, groups: Sequence[str], now: float) -> None:
        """Record that these groups have a live member at ``now``."""

    async def idle_groups(self, before: float, limit: int = 100) -> list[str]:
        """Groups declared on a topic whose last live member was seen before ``before``."""

    async def undeclare(self, topic: str | None, group: str, reason: str) -> int:
        """Stop giving ``topic`` (every topic when None) to ``group`` and move what waits for
        it there to the dead letters with ``reason``; returns how many moved. Idempotent."""


class Queue(GroupLifetimes, DeadLetters, Resource, Protocol):
    """Durable storage of messages per group and member, and leasing."""

    async def declare(self, topic: str, group: str) -> None:
        """Make ``group`` receive every message published on ``topic`` from now on."""

    async def groups(self, topic: str) -> list[str]:
        """The groups declared on ``topic``."""

    async def attach(self, group: str, member: str) -> None:
        """Open a member's inbox so messages can be given to it."""

    async def push(self, group: str, member: str | None, envelopes: Sequence[Envelope]) -> int:
        """Append to a member's inbox (or to the group backlog when ``member`` is None).

        Envelopes whose member is not attached go to the backlog. Returns how many did.
        """

    async def fetch(
        self, group: str, member: str, count: int, lease: float, timeout: float
    ) -> list[Delivery]:
        """Lease up to ``count`` due messages of a member's inbox, waiting up to ``timeout``."""

    async def renew(self, deliveries: Sequence[Delivery], lease: float) -> int:
        """Extend the leases still held; returns how many were."""

    async def ack(self, delivery: Delivery) -> bool:
        """Complete a delivery; False (and no effect) if its lease was lost."""

    async def retry(self, delivery: Delivery, delay: float, error: str) -> bool:
        """Offer the message again to the same member after ``delay``; fenced like ack."""

    async def bury(self, delivery: Delivery, error: str) -> bool:
        """Move the message to the dead letters with ``error``; fenced like ack."""

    async def stats(self) -> list[GroupStats]:
        """Counts per topic and group."""

    async def ping(self) -> ComponentHealth:
        """Check the backend answers."""


class RoutingStore(Queue, Protocol):
    """The extra storage steps a `Dispatcher` composed in this process needs.

    A backend whose dispatcher moves messages in atomic scripts does not implement these.
    """

    async def detach(self, group: str, member: str, *, leased: bool = True) -> list[Envelope]:
        """Close a member's inbox; return what it held, to be handed to others.

        With ``leased`` (a dead member) its leased messages are taken too and the inbox goes;
        without (a member leaving gracefully) they stay until acked or released.
        """

    async def take_backlog(self, group: str, limit: int) -> list[Envelope]:
        """Remove and return up to ``limit`` messages waiting for a member of ``group``."""

    async def outstanding(self, group: str) -> dict[str, int]:
        """Per member: messages pushed to it and not yet settled."""

    async def take_back(self, delivery: Delivery) -> Envelope | None:
        """Take back a leased message unprocessed (no attempt counted), to route again."""

    async def take_expired(self) -> list[tuple[str, Envelope]]:
        """Take back every lease past its deadline; returns (group, envelope) to route again."""


ChannelCallback = Callable[[bytes], None]
"""Receives one message sent on a channel; called on the event loop, so it must not block."""


class Channels(Resource, Protocol):
    """Non-durable fan-out of bytes by channel name, used for events and RPC replies.

    At-most-once: a message reaches the callbacks listening when it is sent, or nobody.
    A channel name is an exact name (never a pattern).
    """

    async def send(self, channel: str, data: bytes) -> int:
        """Send ``data`` to every current listener; returns how many processes or callbacks
        received it (as far as the backend knows)."""
        ...

    async def listen(self, channel: str, callback: ChannelCallback) -> None:
        """Call ``callback`` for each message on ``channel`` from now on; returns once
        messages sent after it are certain to arrive."""
        ...

    async def unlisten(self, channel: str, callback: ChannelCallback) -> None:
        """Stop calling ``callback``; the channel is dropped when nobody listens."""
        ...
