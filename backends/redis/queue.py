"""The Redis queue: one stream per member inbox, fenced acks and leases in Lua scripts."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Sequence
from typing import Any

import msgspec
from redis import exceptions as redis_errors

from broker.backends.redis.acks import AckBatch
from broker.backends.redis.connection import translate_errors
from broker.backends.redis.counters import group_stats
from broker.backends.redis.entries import Malformed, create_group, decode_text, parse_entry
from broker.backends.redis.keys import CONSUMER_GROUP, Keys
from broker.backends.redis.lifetimes import GroupLifetimes
from broker.backends.redis.scripts import Scripts
from broker.backends.redis.topics import TopicGroups
from broker.message import DeadLetter, Delivery, Envelope
from broker.protocols import Clock, Closing, ComponentHealth, GroupStats

__all__ = ["AckBatch", "RedisQueue", "create_group", "decode_text", "encode_envelope"]

log = logging.getLogger("broker")

_encoder = msgspec.msgpack.Encoder()
_dead = msgspec.msgpack.Decoder(DeadLetter)
_replace = msgspec.structs.replace
_PROMOTE_BATCH = 500
_GONE_PAUSE = 0.05
# Lease records are written this long after a read (see `_defer_lease_write`).
_LEASE_WRITE_DELAY = 0.002


def encode_envelope(envelope: Envelope) -> bytes:
    return _encoder.encode(envelope)


class RedisQueue(Closing):
    """Queue storage in Redis streams (see ``keys.py`` for the layout).

    Args:
        client: a redis-py asyncio client (standalone or cluster).
        keys: key names under the client's prefix.
        scripts: the loaded Lua scripts.
        clock: time source for leases and retry delays.
        dead_letter_limit: dead letters kept per group; the oldest are dropped beyond it.
        owns_client: close ``client`` in `aclose`.
        groups_ttl: seconds a topic's list of groups is reused before it is read again (a
            new group is seen at once; a removed one after this).
    """

    def __init__(
        self,
        client: Any,
        keys: Keys,
        scripts: Scripts,
        clock: Clock,
        *,
        dead_letter_limit: int = 10_000,
        owns_client: bool = True,
        groups_ttl: float = 1.0,
    ) -> None:
        self._redis = client
        self._keys = keys
        self._scripts = scripts
        self._clock = clock
        self._dead_limit = dead_letter_limit
        self._owns = owns_client
        self._topics = TopicGroups(client, keys, groups_ttl)
        self._due: dict[tuple[str, str], float] = {}
        self._acks: dict[tuple[str, str], AckBatch] = {}
        self._background: set[asyncio.Future[None]] = set()
        self._lease_writes: list[tuple[list[str], list[str | float], list[Delivery]]] = []
        # deliveries read whose lease record is not written yet, by (group, member, receipt)
        self._unwritten: set[tuple[str, str, str]] = set()
        self._lease_timer: asyncio.TimerHandle | None = None
        self._lease_tasks: set[asyncio.Future[None]] = set()
        self.lifetimes = GroupLifetimes(client, keys, scripts, dead_letter_limit=dead_letter_limit)
        """When groups last ran, and retiring them (shared with the hybrid queue)."""

    async def aclose(self) -> None:
        await self._leases_written()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._owns:
            await self._redis.aclose()

    @property
    def redis(self) -> Any:
        """The underlying redis-py client."""
        return self._redis

    @property
    def dead_letter_limit(self) -> int:
        return self._dead_limit

    def now(self) -> float:
        """The time of this queue's clock."""
        return self._clock.now()

    # -- topics and inboxes ----------------------------------------------------------------

    async def declare(self, topic: str, group: str) -> None:
        """Add ``group`` to ``topic``; every producer sees it once this returns (no wait: see
        `TopicGroups`)."""
        await self._topics.declare(topic, group)
        await self.lifetimes.declared(topic, group, self._clock.now())

    async def groups(self, topic: str) -> list[str]:
        """The groups on ``topic``, as this producer last read them (see `TopicGroups`)."""
        return await self._topics.groups(topic)

    @property
    def topic_groups(self) -> TopicGroups:
        """This producer's lists of groups per topic (the dispatcher checks them)."""
        return self._topics

    async def attach(self, group: str, member: str) -> None:
        await create_group(self._redis, self._keys.group(group).inbox(member))

    async def push(self, group: str, member: str | None, envelopes: Sequence[Envelope]) -> int:
        keys = self._keys.group(group)
        inbox = keys.inbox(member or "-")
        args: list[str | bytes | int] = [member or ""]
        for envelope in envelopes:
            args += [envelope.topic, envelope.attempt, encode_envelope(envelope)]
        with translate_errors("push"):
            return int(
                await self._scripts.push(
                    [keys.members, inbox, keys.backlog, keys.load, keys.stats], args
                )
            )

    # -- group lifetimes -------------------------------------------------------------------

    async def mark_alive(self, groups: Sequence[str], now: float) -> None:
        await self.lifetimes.mark_alive(groups, now)

    async def idle_groups(self, before: float, limit: int = 100) -> list[str]:
        return await self.lifetimes.idle_groups(before, limit)

    async def undeclare(self, topic: str | None, group: str, reason: str) -> int:
        topics = [topic] if topic is not None else await self.lifetimes.topics(group)
        return await self.retire(topics, group, reason, forget=topic is None)

    async def retire(self, topics: Sequence[str], group: str, reason: str, *, forget: bool) -> int:
        """Take ``group`` off ``topics``, dead-letter its backlog of them and, with ``forget``,
        forget the group once nothing of it remains; returns how many messages moved."""
        lifetimes = self.lifetimes
        await lifetimes.withdraw(topics, group)
        for name in topics:
            self._topics.forget(name)
        keys, now = self._keys.group(group), self._clock.now()
        moved = await lifetimes.move_to_dead(
            keys.backlog, keys, set(topics), reason, now=now, counted=True
        )
        if forget:
            await lifetimes.forget_if_empty(group)
        return moved

    # -- leasing ---------------------------------------------------------------------------

    async def fetch(
        self, group: str, member: str, count: int, lease: float, timeout: float
    ) -> list[Delivery]:
        keys = self._keys.group(group)
        inbox = keys.inbox(member)
        wait = timeout
        due = self._due.get((group, member))
        if due is not None:
            now = self._clock.now()
            if due <= now:
                await self._promote(group, member)
            else:
                wait = min(wait, max(due - now, 0.001))
        loop = asyncio.get_running_loop()
        started = loop.time()
        with translate_errors("fetch"):
            try:
                reply = await self._redis.xreadgroup(
                    CONSUMER_GROUP,
                    member,
                    {inbox: ">"},
                    count=count,
                    block=max(int(wait * 1000), 1),
                )
            except redis_errors.ResponseError as exc:
                if "NOGROUP" not in str(exc) and "UNBLOCKED" not in str(exc):
                    raise
                # The inbox is gone (evicted, or Redis lost its data): the heartbeat registers
                # this member again; wait for it instead of spinning.
                await asyncio.sleep(min(wait, _GONE_PAUSE))
                return []
        if not reply:
            if loop.time() - started < wait / 2:
                await asyncio.sleep(min(wait, 0.001))  # a server that does not block (fakeredis)
            return []
        return await self._leased(group, member, reply[0][1], lease)

    async def _promote(self, group: str, member: str) -> None:
        keys = self._keys.group(group)
        with translate_errors("promote retries"):
            await self._scripts.promote(
                [keys.delayed(member), keys.inbox(member), keys.stats],
                [self._clock.now(), _PROMOTE_BATCH],
            )
            head = await self._redis.zrange(keys.delayed(member), 0, 0, withscores=True)
        if head:
            self._due[(group, member)] = float(head[0][1])
        else:
            self._due.pop((group, member), None)

    async def _leased(
        self, group: str, member: str, entries: list[Any], lease: float
    ) -> list[Delivery]:
        keys = self._keys.group(group)
        until = self._clock.now() + lease
        out: list[Delivery] = []
        args: list[str | float] = [until, member]
        unwritten = self._unwritten
        late: list[tuple[Delivery, str, bool]] = []
        for receipt, fields in entries:
            receipt = decode_text(receipt)
            parsed = parse_entry(receipt, fields)
            if isinstance(parsed, Malformed):
                dead = Delivery(parsed.envelope, group, member, 1, until, receipt)
                late.append((dead, parsed.reason, parsed.counted))
                continue
            attempt = parsed.deliveries + 1
            envelope = _replace(parsed.envelope, attempt=attempt)
            delivery = Delivery(envelope, group, member, attempt, until, receipt)
            if attempt > envelope.max_attempts:
                late.append((delivery, "lease lost on every attempt", True))
                continue
            unwritten.add((group, member, receipt))
            out.append(delivery)
        if out:
            # Written a moment later, not awaited: the handlers start one round trip sooner
            # and a quick one replies before this script takes Redis's time. Every later
            # step (ack, retry, release, expiry) checks the stream itself and the script
            # skips entries already gone, so the order does not matter.
            self._defer_lease_write(
                [keys.leases(member), keys.stats, keys.inbox(member)], args, out
            )
        for delivery, reason, counted in late:
            log.error("message %s dead-lettered: %s", delivery.envelope.id, reason)
            await self._bury(delivery, reason, counted=counted)
        return out

    def _defer_lease_write(
        self, keys: list[str], args: list[str | float], deliveries: list[Delivery]
    ) -> None:
        self._lease_writes.append((keys, args, deliveries))
        if self._lease_timer is None:
            loop = asyncio.get_running_loop()
            self._lease_timer = loop.call_later(_LEASE_WRITE_DELAY, self._write_leases)

    def _write_leases(self) -> None:
        writes, self._lease_writes, self._lease_timer = self._lease_writes, [], None
        unwritten = self._unwritten
        for keys, args, deliveries in writes:
            # a delivery acked meanwhile needs no lease record (its ack, if refused or lost,
            # leaves it pending with none, which expiry takes back after a lease)
            for delivery in deliveries:
                key = (delivery.group, delivery.member, delivery.receipt)
                if key in unwritten:
                    unwritten.discard(key)
                    args += [delivery.receipt, delivery.envelope.topic]
            if len(args) == 2:
                continue
            self._lease_tasks.add(
                self._in_background(self._scripts.leased(keys, args), "record leases")
            )

    async def _leases_written(self) -> None:
        """Write the deferred lease records now and wait for them (before a renewal, which
        must not be overwritten by an older deadline)."""
        if self._lease_timer is not None:
            self._lease_timer.cancel()
            self._write_leases()
        if self._lease_tasks:
            await asyncio.gather(*self._lease_tasks, return_exceptions=True)

    def _in_background(self, step: Awaitable[object], action: str) -> asyncio.Future[None]:
        async def run() -> None:
            try:
                with translate_errors(action):
                    await step
            except Exception:
                log.exception("%s failed; expiry takes the entries back after a lease", action)

        task = asyncio.ensure_future(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(self._lease_tasks.discard)
        return task

    async def renew(self, deliveries: Sequence[Delivery], lease: float) -> int:
        by_member: dict[tuple[str, str], list[str]] = defaultdict(list)
        for delivery in deliveries:
            by_member[(delivery.group, delivery.member)].append(delivery.receipt)
        await self._leases_written()
        until = self._clock.now() + lease
        renewed = 0
        with translate_errors("renew leases"):
            for (group, member), receipts in by_member.items():
                renewed += int(
                    await self._scripts.renew(
                        [self._keys.group(group).leases(member)], [until, *receipts]
                    )
                )
        return renewed

    async def ack(self, delivery: Delivery) -> bool:
        return await self.ack_later(delivery)

    def ack_later(self, delivery: Delivery) -> asyncio.Future[bool]:
        """`ack` without waiting: the future tells whether Redis took it. The fence is in
        Redis, so an ack is a round trip; a subscriber goes on while it settles."""
        self._unwritten.discard((delivery.group, delivery.member, delivery.receipt))
        batch = self._acks.get((delivery.group, delivery.member))
        if batch is None:
            if len(self._acks) > 10_000:
                self._acks.clear()
            keys, member = self._keys.group(delivery.group), delivery.member
            batch = self._acks[(delivery.group, member)] = AckBatch(
                self._scripts,
                [keys.inbox(member), keys.leases(member), keys.load, keys.stats],
                member,
                self._background,
            )
        return batch.submit(delivery.receipt, delivery.envelope.topic)

    async def retry(self, delivery: Delivery, delay: float, error: str) -> bool:
        keys = self._keys.group(delivery.group)
        member, envelope = delivery.member, delivery.envelope
        due = self._clock.now() + delay
        record = f"{delivery.attempt}|{envelope.topic}|".encode() + encode_envelope(envelope)
        with translate_errors("retry"):
            done = await self._scripts.retry(
                [keys.inbox(member), keys.leases(member), keys.delayed(member), keys.stats],
                [member, delivery.receipt, envelope.topic, due, record],
            )
        if done:
            key = (delivery.group, member)
            self._due[key] = min(due, self._due.get(key, due))
        return bool(done)

    async def bury(self, delivery: Delivery, error: str) -> bool:
        return await self._bury(delivery, error, counted=True)

    async def _bury(self, delivery: Delivery, error: str, *, counted: bool) -> bool:
        """Dead-letter a delivery; ``counted`` False for an entry the scripts never counted
        (written by another tool), so the queue counters stay as they are."""
        keys = self._keys.group(delivery.group)
        member, envelope = delivery.member, delivery.envelope
        failed_at = self._clock.now()
        record = _encoder.encode(DeadLetter(envelope, delivery.group, error, failed_at))
        with translate_errors("dead-letter"):
            done = await self._scripts.bury(
                [
                    keys.inbox(member),
                    keys.leases(member),
                    keys.load,
                    keys.stats,
                    keys.dead,
                    keys.dead_data,
                ],
                [
                    member,
                    delivery.receipt,
                    envelope.topic,
                    envelope.id,
                    failed_at,
                    record,
                    self._dead_limit,
                    1 if counted else 0,
                ],
            )
        return bool(done)

    # -- dead letters ----------------------------------------------------------------------

    async def _all_groups(self) -> list[str]:
        with translate_errors("list groups"):
            return sorted(decode_text(g) for g in await self._redis.smembers(self._keys.groups))

    async def dead_letters(self, group: str | None = None, limit: int = 100) -> list[DeadLetter]:
        found: list[DeadLetter] = []
        with translate_errors("list dead letters"):
            for name in [group] if group is not None else await self._all_groups():
                keys = self._keys.group(name)
                ids = await self._redis.zrevrange(keys.dead, 0, limit - 1)
                if ids:
                    records = await self._redis.hmget(keys.dead_data, ids)
                    found += [_dead.decode(r) for r in records if r is not None]
        found.sort(key=lambda d: d.failed_at, reverse=True)
        return found[:limit]

    async def take_dead(self, ids: Sequence[str]) -> list[DeadLetter]:
        if not ids:
            return []
        taken: list[DeadLetter] = []
        with translate_errors("take dead letters"):
            for name in await self._all_groups():
                keys = self._keys.group(name)
                found = await self._redis.hmget(keys.dead_data, list(ids))
                args: list[str] = []
                for message, record in zip(ids, found, strict=True):
                    if record is not None:
                        args += [message, _dead.decode(record).envelope.topic]
                if args:
                    records = await self._scripts.take_dead(
                        [keys.dead, keys.dead_data, keys.stats], args
                    )
                    taken += [_dead.decode(record) for record in records]
        return taken

    # -- observability ---------------------------------------------------------------------

    async def stats(self) -> list[GroupStats]:
        out: list[GroupStats] = []
        with translate_errors("read stats"):
            for name in await self._all_groups():
                raw = await self._redis.hgetall(self._keys.group(name).stats)
                out += group_stats(name, raw)
        return out

    async def ping(self) -> ComponentHealth:
        started = time.perf_counter()
        try:
            await self._redis.ping()
        except Exception as exc:
            return ComponentHealth("redis", False, 0.0, f"{type(exc).__name__}: {exc}")
        return ComponentHealth("redis", True, (time.perf_counter() - started) * 1000)
