"""The in-memory queue: the reference implementation of `broker.protocols.Queue`.

Everything lives in this process. A group keeps a backlog (messages no member could take yet) and
one inbox per member: ready messages, delayed retries (a heap by due time) and leases. A lease is
fenced by the delivery's attempt number, so a member that lost it cannot ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import msgspec

from broker.backend import Backend, BackendRequest
from broker.backends.channels import MemoryChannels
from broker.balancers.dispatch import LocalDispatcher
from broker.balancers.local import LocalBalancer
from broker.balancers.registry import MemoryRegistry
from broker.clock import SystemClock
from broker.message import DeadLetter, Delivery, Envelope
from broker.protocols import Clock, Closing, ComponentHealth, GroupStats

__all__ = ["MemoryQueue", "connect_memory"]

_replace = msgspec.structs.replace
# How long a waiting fetch sleeps at most while retries are delayed, so a moved clock is seen.
_DELAY_POLL = 0.05


@dataclass(slots=True)
class _Inbox:
    ready: deque[Envelope] = field(default_factory=deque)
    delayed: list[tuple[float, int, Envelope]] = field(default_factory=list)
    leased: dict[str, Delivery] = field(default_factory=dict)
    """The deliveries held by the member: fenced by attempt, expiring at ``lease_until``."""
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    open: bool = True

    def outstanding(self) -> int:
        return len(self.ready) + len(self.delayed) + len(self.leased)


@dataclass(slots=True)
class _Group:
    backlog: deque[Envelope] = field(default_factory=deque)
    inboxes: dict[str, _Inbox] = field(default_factory=dict)
    dead: deque[DeadLetter] = field(default_factory=deque)
    processed: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    topics: set[str] = field(default_factory=set)
    seen: float = 0.0
    """When a live member was last reported (or the group was declared)."""


class MemoryQueue(Closing):
    """Queue storage in process memory, with the same semantics as the Redis backend.

    Args:
        clock: time source for leases and delays (a `ManualClock` in tests).
        dead_letter_limit: dead letters kept per group; the oldest are dropped beyond it.
    """

    def __init__(self, clock: Clock | None = None, *, dead_letter_limit: int = 10_000) -> None:
        self._clock = clock or SystemClock()
        self._dead_limit = dead_letter_limit
        self._topics: dict[str, list[str]] = {}
        self._groups: dict[str, _Group] = {}
        self._tiebreak = itertools.count()
        self._closed = False

    async def aclose(self) -> None:
        self._closed = True
        for group in self._groups.values():
            for inbox in group.inboxes.values():
                inbox.wakeup.set()

    # -- routing storage -------------------------------------------------------------------

    async def declare(self, topic: str, group: str) -> None:
        groups = self._topics.setdefault(topic, [])
        if group not in groups:
            groups.append(group)
        state = self._group(group)
        if not state.topics:
            state.seen = self._clock.now()
        state.topics.add(topic)

    # -- group lifetimes -------------------------------------------------------------------

    async def mark_alive(self, groups: Sequence[str], now: float) -> None:
        for name in groups:
            state = self._groups.get(name)
            if state is not None:
                state.seen = max(state.seen, now)

    async def idle_groups(self, before: float, limit: int = 100) -> list[str]:
        idle = [name for name, state in self._groups.items() if state.seen < before]
        return sorted(idle)[:limit]

    async def undeclare(self, topic: str | None, group: str, reason: str) -> int:
        state = self._groups.get(group)
        if state is None:
            return 0
        topics = set(state.topics) if topic is None else {topic}
        for name in topics:
            with contextlib.suppress(ValueError):
                self._topics.get(name, []).remove(group)
            if not self._topics.get(name, True):
                del self._topics[name]
        state.topics -= topics
        moved = [e for e in state.backlog if e.topic in topics]
        state.backlog = deque(e for e in state.backlog if e.topic not in topics)
        for inbox in state.inboxes.values():
            moved.extend(e for e in inbox.ready if e.topic in topics)
            inbox.ready = deque(e for e in inbox.ready if e.topic not in topics)
        for envelope in moved:
            self._add_dead(state, group, envelope, reason)
        if not state.topics and not state.dead and not state.inboxes:
            del self._groups[group]
        return len(moved)

    async def groups(self, topic: str) -> list[str]:
        return list(self._topics.get(topic, ()))

    async def attach(self, group: str, member: str) -> None:
        inboxes = self._group(group).inboxes
        inbox = inboxes.get(member)
        if inbox is None or not inbox.open:
            inboxes[member] = _Inbox()

    async def detach(self, group: str, member: str, *, leased: bool = True) -> list[Envelope]:
        state = self._group(group)
        inbox = state.inboxes.get(member)
        if inbox is None:
            return []
        inbox.open = False
        inbox.wakeup.set()
        taken = list(inbox.ready)
        taken.extend(entry for _, _, entry in sorted(inbox.delayed))
        inbox.ready.clear()
        inbox.delayed.clear()
        if leased:
            taken.extend(lease.envelope for lease in inbox.leased.values())
            inbox.leased.clear()
            del state.inboxes[member]
        return taken

    async def push(self, group: str, member: str | None, envelopes: Sequence[Envelope]) -> int:
        state = self._group(group)
        inbox = state.inboxes.get(member) if member is not None else None
        if inbox is None or not inbox.open:
            state.backlog.extend(envelopes)
            return len(envelopes)
        inbox.ready.extend(envelopes)
        inbox.wakeup.set()
        return 0

    async def take_backlog(self, group: str, limit: int) -> list[Envelope]:
        backlog = self._group(group).backlog
        return [backlog.popleft() for _ in range(min(limit, len(backlog)))]

    async def outstanding(self, group: str) -> dict[str, int]:
        return {m: inbox.outstanding() for m, inbox in self._group(group).inboxes.items()}

    # -- leasing ---------------------------------------------------------------------------

    async def fetch(
        self, group: str, member: str, count: int, lease: float, timeout: float
    ) -> list[Delivery]:
        state = self._group(group)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        while True:
            inbox = state.inboxes.get(member)
            if inbox is None or not inbox.open or self._closed:
                # Evicted or leaving: the heartbeat registers it again; do not spin meanwhile.
                await asyncio.sleep(min(timeout, _DELAY_POLL))
                return []
            now = self._clock.now()
            self._promote(inbox, now)
            if inbox.ready:
                return self._lease(state, group, member, inbox, count, now + lease)
            remaining = give_up - loop.time()
            if remaining <= 0:
                return []
            if inbox.delayed:
                remaining = min(remaining, max(inbox.delayed[0][0] - now, 0.0), _DELAY_POLL)
            inbox.wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):  # no extra task, unlike wait_for
                    await inbox.wakeup.wait()

    def _promote(self, inbox: _Inbox, now: float) -> None:
        delayed = inbox.delayed
        while delayed and delayed[0][0] <= now:
            inbox.ready.append(heapq.heappop(delayed)[2])

    def _lease(
        self, state: _Group, group: str, member: str, inbox: _Inbox, count: int, until: float
    ) -> list[Delivery]:
        out: list[Delivery] = []
        ready = inbox.ready
        leased = inbox.leased
        while ready and len(out) < count:
            envelope = ready.popleft()
            attempt = envelope.attempt + 1
            envelope = _replace(envelope, attempt=attempt)
            if attempt > envelope.max_attempts:
                self._add_dead(state, group, envelope, "lease lost on every attempt")
                continue
            delivery = Delivery(envelope, group, member, attempt, until)
            leased[envelope.id] = delivery
            out.append(delivery)
        return out

    def _held(self, delivery: Delivery) -> tuple[_Group, _Inbox, Delivery] | None:
        state = self._groups.get(delivery.group)
        inbox = state.inboxes.get(delivery.member) if state is not None else None
        lease = inbox.leased.get(delivery.envelope.id) if inbox is not None else None
        if state is None or inbox is None or lease is None:
            return None
        if lease.attempt != delivery.attempt:
            return None
        return state, inbox, lease

    async def renew(self, deliveries: Sequence[Delivery], lease: float) -> int:
        until = self._clock.now() + lease
        renewed = 0
        for delivery in deliveries:
            held = self._held(delivery)
            if held is not None:
                leased = held[1].leased
                leased[delivery.envelope.id] = _replace(held[2], lease_until=until)
                renewed += 1
        return renewed

    async def ack(self, delivery: Delivery) -> bool:
        # The hot path: _held() inlined.
        state = self._groups.get(delivery.group)
        if state is None:
            return False
        inbox = state.inboxes.get(delivery.member)
        if inbox is None:
            return False
        envelope = delivery.envelope
        lease = inbox.leased.get(envelope.id)
        if lease is None or lease.attempt != delivery.attempt:
            return False
        del inbox.leased[envelope.id]
        state.processed[envelope.topic] += 1
        return True

    async def retry(self, delivery: Delivery, delay: float, error: str) -> bool:
        held = self._held(delivery)
        if held is None:
            return False
        state, inbox, lease = held
        del inbox.leased[delivery.envelope.id]
        state.failed[delivery.envelope.topic] += 1
        due = self._clock.now() + delay
        heapq.heappush(inbox.delayed, (due, next(self._tiebreak), lease.envelope))
        inbox.wakeup.set()
        return True

    async def bury(self, delivery: Delivery, error: str) -> bool:
        held = self._held(delivery)
        if held is None:
            return False
        state, inbox, lease = held
        del inbox.leased[delivery.envelope.id]
        state.failed[delivery.envelope.topic] += 1
        self._add_dead(state, delivery.group, lease.envelope, error)
        return True

    async def take_back(self, delivery: Delivery) -> Envelope | None:
        held = self._held(delivery)
        if held is None:
            return None
        _, inbox, lease = held
        del inbox.leased[delivery.envelope.id]
        return _replace(lease.envelope, attempt=lease.envelope.attempt - 1)

    async def take_expired(self) -> list[tuple[str, Envelope]]:
        now = self._clock.now()
        expired: list[tuple[str, Envelope]] = []
        for name, inbox in self._inboxes():
            late = [key for key, lease in inbox.leased.items() if lease.lease_until < now]
            expired.extend((name, inbox.leased.pop(key).envelope) for key in late)
        return expired

    # -- dead letters ----------------------------------------------------------------------

    def _add_dead(self, state: _Group, group: str, envelope: Envelope, error: str) -> None:
        state.dead.append(DeadLetter(envelope, group, error, self._clock.now()))
        while len(state.dead) > self._dead_limit:
            state.dead.popleft()

    async def dead_letters(self, group: str | None = None, limit: int = 100) -> list[DeadLetter]:
        names = [group] if group is not None else list(self._groups)
        found = [d for name in names for d in self._group(name).dead]
        found.sort(key=lambda d: d.failed_at, reverse=True)
        return found[:limit]

    async def take_dead(self, ids: Sequence[str]) -> list[DeadLetter]:
        wanted = set(ids)
        taken: list[DeadLetter] = []
        for state in self._groups.values():
            keep = deque(d for d in state.dead if d.envelope.id not in wanted)
            if len(keep) != len(state.dead):
                taken.extend(d for d in state.dead if d.envelope.id in wanted)
                state.dead = keep
        return taken

    # -- observability ---------------------------------------------------------------------

    async def stats(self) -> list[GroupStats]:
        out: list[GroupStats] = []
        for name, state in sorted(self._groups.items()):
            queued: Counter[str] = Counter(e.topic for e in state.backlog)
            in_flight: Counter[str] = Counter()
            delayed: Counter[str] = Counter()
            for inbox in state.inboxes.values():
                queued.update(e.topic for e in inbox.ready)
                delayed.update(e.topic for _, _, e in inbox.delayed)
                in_flight.update(lease.envelope.topic for lease in inbox.leased.values())
            dead = Counter(d.envelope.topic for d in state.dead)
            out.extend(
                GroupStats(
                    topic=topic,
                    group=name,
                    queued=queued[topic],
                    in_flight=in_flight[topic],
                    delayed=delayed[topic],
                    dead=dead[topic],
                    processed=state.processed[topic],
                    failed=state.failed[topic],
                )
                for topic in sorted(state.topics | set(queued) | set(dead))
            )
        return out

    async def ping(self) -> ComponentHealth:
        return ComponentHealth(name="memory", ok=not self._closed, latency_ms=0.0)

    # -- helpers ---------------------------------------------------------------------------

    def _group(self, group: str) -> _Group:
        state = self._groups.get(group)
        if state is None:
            state = self._groups[group] = _Group()
        return state

    def _inboxes(self) -> Iterator[tuple[str, _Inbox]]:
        for name, state in self._groups.items():
            for inbox in state.inboxes.values():
                yield name, inbox


def connect_memory(request: BackendRequest) -> Backend:
    """The connector of ``memory://``: queue, registry and balancing in this process."""
    registry = MemoryRegistry(request.clock, request.config.heartbeat_ttl)
    balancer = LocalBalancer(registry, request.strategy, request.rng)
    queue = MemoryQueue(request.clock)
    dispatcher = LocalDispatcher(queue, balancer)
    return Backend(queue, registry, dispatcher, MemoryChannels())
