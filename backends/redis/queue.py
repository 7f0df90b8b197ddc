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

from backends.redis.acks import AckBatch
from backends.redis.connection import translate_errors
from backends.redis.keys import CONSUMER_GROUP, Keys
from backends.redis.scripts import Scripts
from backends.redis.topics import TopicGroups
from broker.message import DeadLetter, Delivery, Envelope
from broker.protocols import Clock, Closing, ComponentHealth, GroupStats

__all__ = ["AckBatch", "RedisQueue", "create_group", "decode_text", "encode_envelope"]

log = logging.getLogger("broker")

_encoder = msgspec.msgpack.Encoder()
_envelope = msgspec.msgpack.Decoder(Envelope)
_dead = msgspec.msgpack.Decoder(DeadLetter)
_replace = msgspec.structs.replace
_PROMOTE_BATCH = 500
_GONE_PAUSE = 0.05
# Lease records are written this long after a read (see `_defer_lease_write`).
_LEASE_WRITE_DELAY = 0.002


async def create_group(client: Any, stream: str) -> None:
    """Create the consumer group of ``stream`` (and the stream) from its first entry, if absent.

    From the first entry, not from ``$``: a group made after messages were added must see them.
    """
    with translate_errors("create consumer group"):
        try:
            await client.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
        except redis_errors.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


def encode_envelope(envelope: Envelope) -> bytes:
    return _encoder.encode(envelope)


def decode_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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
        self._lease_writes: list[tuple[list[str], list[str | float]]] = []
        self._lease_timer: asyncio.TimerHandle | None = None
        self._lease_tasks: set[asyncio.Future[None]] = set()

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
        args: list[str | float] = [until]
        late: list[Delivery] = []
        for receipt, fields in entries:
            receipt = decode_text(receipt)
            topic = decode_text(fields[b"t"])
            attempt = int(fields[b"a"]) + 1
            args += [receipt, topic]
            try:
                envelope = _replace(_envelope.decode(fields[b"e"]), attempt=attempt)
            except msgspec.DecodeError:
                envelope = Envelope(id=receipt, topic=topic, payload=fields[b"e"], created_at=0.0)
                late.append(Delivery(envelope, group, member, attempt, until, receipt))
                continue
            delivery = Delivery(envelope, group, member, attempt, until, receipt)
            (late if attempt > envelope.max_attempts else out).append(delivery)
        script_keys = [keys.leases(member), keys.stats, keys.inbox(member)]
        if not late:
            # Written a moment later, not awaited: the handlers start one round trip sooner
            # and a quick one replies before this script takes Redis's time. Every later
            # step (ack, retry, release, expiry) checks the stream itself, the script skips
            # entries already gone, and the counters only add, so the order does not matter.
            self._defer_lease_write(script_keys, args)
            return out
        with translate_errors("record leases"):
            await self._scripts.leased(script_keys, args)
        for delivery in late:
            reason = (
                "lease lost on every attempt"
                if delivery.envelope.created_at
                else "undecodable envelope"
            )
            await self.bury(delivery, reason)
        return out

    def _defer_lease_write(self, keys: list[str], args: list[str | float]) -> None:
        self._lease_writes.append((keys, args))
        if self._lease_timer is None:
            loop = asyncio.get_running_loop()
            self._lease_timer = loop.call_later(_LEASE_WRITE_DELAY, self._write_leases)

    def _write_leases(self) -> None:
        writes, self._lease_writes, self._lease_timer = self._lease_writes, [], None
        for keys, args in writes:
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
        return await batch.ack(delivery.receipt, delivery.envelope.topic)

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
                records = await self._scripts.take_dead(
                    [keys.dead, keys.dead_data, keys.stats], list(ids)
                )
                for record in records:
                    dead = _dead.decode(record)
                    await self._redis.hincrby(keys.stats, f"dead:{dead.envelope.topic}", -1)
                    taken.append(dead)
        return taken

    # -- observability ---------------------------------------------------------------------

    async def stats(self) -> list[GroupStats]:
        out: list[GroupStats] = []
        with translate_errors("read stats"):
            for name in await self._all_groups():
                raw = await self._redis.hgetall(self._keys.group(name).stats)
                counts: dict[str, dict[str, int]] = defaultdict(dict)
                for field, value in raw.items():
                    kind, _, topic = decode_text(field).partition(":")
                    counts[topic][kind] = max(int(value), 0)
                out.extend(
                    GroupStats(
                        topic=topic,
                        group=name,
                        queued=c.get("queued", 0),
                        in_flight=c.get("inflight", 0),
                        delayed=c.get("delayed", 0),
                        dead=c.get("dead", 0),
                        processed=c.get("processed", 0),
                        failed=c.get("failed", 0),
                    )
                    for topic, c in sorted(counts.items())
                )
        return out

    async def ping(self) -> ComponentHealth:
        started = time.perf_counter()
        try:
            await self._redis.ping()
        except Exception as exc:
            return ComponentHealth("redis", False, 0.0, f"{type(exc).__name__}: {exc}")
        return ComponentHealth("redis", True, (time.perf_counter() - started) * 1000)
