"""The hybrid queue: Redis streams read by this process, leased locally (see the package)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from broker.backends.hybrid.acks import StreamAcks, stream_order
from broker.backends.hybrid.stats import combined, stored
from broker.backends.redis import (
    CONSUMER_GROUP,
    Keys,
    Malformed,
    RedisQueue,
    Scripts,
    create_group,
    decode_text,
    parse_entry,
    translate_errors,
)
from broker.message import DeadLetter, Delivery, Envelope
from broker.protocols import Closing, ComponentHealth, Dispatcher, GroupStats, RoutingStore

__all__ = ["HybridQueue"]

log = logging.getLogger("broker")

_decode = msgspec.msgpack.Decoder(Envelope).decode
_replace = msgspec.structs.replace
_READ_BLOCK = 0.5
_READ_BATCH = 500


class HybridQueue(Closing):
    """Local inboxes in a `MemoryQueue`; durability, dead letters and counters in Redis.

    Args:
        durable: the Redis queue of this client (dead letters, scripts, keys).
        local: the in-process queue of this client's members (a `MemoryQueue`).
        process: this process's consumer name.
        topics_of: the topics this process's live members of a group handle (what it reads).
        ttl: entries idle longer than this are claimed from their (dead) process.
        buffer: entries read from Redis and not yet acked, per group, at most.
        forget_after: a consumer (process) of a topic stream with nothing pending and silent
            this long is deleted, so consumers of processes gone for good do not pile up
            (default: ten TTLs).
    """

    def __init__(
        self,
        durable: RedisQueue,
        keys: Keys,
        scripts: Scripts,
        local: RoutingStore,
        process: str,
        topics_of: Callable[[str], set[str]],
        *,
        ttl: float,
        buffer: int = 5000,
        forget_after: float | None = None,
    ) -> None:
        self._durable = durable
        self._redis: Any = durable.redis
        self._keys = keys
        self._scripts = scripts
        self.scripts = scripts
        """The loaded Lua scripts (shared with the hybrid dispatcher)."""
        self._local = local
        self.process = process
        self._ttl = ttl
        self._gone = 10 * ttl if forget_after is None else forget_after
        self._buffer = buffer
        # (group, message id) -> (topic, entry id, when its idle time was last reset)
        self._receipts: dict[tuple[str, str], tuple[str, str, float]] = {}
        self._held: dict[str, int] = defaultdict(int)
        self._topics_of = topics_of
        self._created: set[tuple[str, str]] = set()
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._room: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._acks: dict[tuple[str, str], StreamAcks] = {}
        self._background: set[asyncio.Future[None]] = set()
        self._unsettled = 0
        self.dispatcher: Dispatcher | None = None
        """The local dispatcher read entries go to (set by the client constructor)."""

    async def aclose(self) -> None:
        for reader in self._readers.values():
            while not reader.done():  # redis-py may swallow one cancel inside a read
                reader.cancel()
                await asyncio.wait([reader], timeout=0.1)
        self._readers.clear()
        for batch in self._acks.values():
            batch.flush()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._give_back()
        await self._local.aclose()
        await self._durable.aclose()

    @property
    def redis(self) -> Any:
        """The underlying redis-py client."""
        return self._redis

    async def _give_back(self) -> None:
        by_stream: dict[str, list[str]] = defaultdict(list)
        for (group, _), (topic, entry, _) in self._receipts.items():
            by_stream[self._keys.group(group).stream(topic)].append(entry)
        for stream, ids in by_stream.items():
            await self._scripts.requeue([stream], [self.process, *ids])
        self._receipts.clear()

    # -- topics and members ----------------------------------------------------------------

    async def declare(self, topic: str, group: str) -> None:
        await self._local.declare(topic, group)
        await self._durable.declare(topic, group)
        await self._create(group, topic)

    async def _create(self, group: str, topic: str) -> None:
        await create_group(self._redis, self._keys.group(group).stream(topic))
        self._created.add((group, topic))

    async def groups(self, topic: str) -> list[str]:
        return await self._durable.groups(topic)

    async def attach(self, group: str, member: str) -> None:
        await self._local.attach(group, member)
        for topic in sorted(self._topics_of(group)):
            # a consumer of the stream from now on: producers see the topic is read
            await self._create(group, topic)
            with translate_errors("join stream"):
                await self._redis.xgroup_createconsumer(
                    self._keys.group(group).stream(topic), CONSUMER_GROUP, self.process
                )
        reader = self._readers.get(group)
        if reader is None or reader.done():
            self._readers[group] = asyncio.create_task(self._read(group), name="broker-hybrid")

    async def push(self, group: str, member: str | None, envelopes: Sequence[Envelope]) -> int:
        return await self._local.push(group, member, envelopes)

    # -- group lifetimes -------------------------------------------------------------------

    async def mark_alive(self, groups: Sequence[str], now: float) -> None:
        await self._durable.mark_alive(groups, now)

    async def idle_groups(self, before: float, limit: int = 100) -> list[str]:
        return await self._durable.idle_groups(before, limit)

    async def undeclare(self, topic: str | None, group: str, reason: str) -> int:
        lifetimes = self._durable.lifetimes
        topics = [topic] if topic is not None else await lifetimes.topics(group)
        await lifetimes.withdraw(topics, group)
        await self._local.undeclare(topic, group, reason)
        keys, now = self._keys.group(group), self._durable.now()
        moved = 0
        for name in topics:
            stream = keys.stream(name)
            moved += await lifetimes.move_to_dead(
                stream, keys, None, reason, now=now, counted=False
            )
            with translate_errors("retire group"):
                await self._redis.delete(stream)
            self._created.discard((group, name))
        # then the durable side: the backlog, the cached group lists, forgetting the group
        return moved + await self._durable.retire(topics, group, reason, forget=topic is None)

    # -- reading from Redis ----------------------------------------------------------------

    async def _read(self, group: str) -> None:
        keys = self._keys.group(group)
        last_claim = 0.0
        while True:
            try:
                for topic in self._topics_of(group):
                    if (group, topic) not in self._created:
                        await self._create(group, topic)
                if time.monotonic() - last_claim > self._ttl / 3:
                    last_claim = time.monotonic()
                    await self._keep_alive(group)
                    await self._claim(group)
                await self._read_once(group, keys.stream)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if "NOGROUP" in str(exc):
                    self._created.clear()  # Redis lost the streams: create them again
                    continue
                log.exception("reading group %s from Redis failed; retrying", group)
                await asyncio.sleep(0.5)

    async def _read_once(self, group: str, stream: Any) -> None:
        room = self._buffer - self._held[group]
        if room < min(_READ_BATCH, self._buffer // 2) and self._held[group] > 0:
            self._room[group].clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room[group].wait(), _READ_BLOCK)
            return
        topic_of = {stream(t): t for t in sorted(self._topics_of(group))}
        streams = dict.fromkeys(topic_of, ">")
        if not streams:
            await asyncio.sleep(_READ_BLOCK)
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        since = time.monotonic()
        with translate_errors("read"):
            reply = await self._redis.xreadgroup(
                CONSUMER_GROUP,
                self.process,
                streams,
                count=min(room, _READ_BATCH),
                block=int(_READ_BLOCK * 1000),
            )
        if not reply:
            if loop.time() - started < _READ_BLOCK / 2:
                await asyncio.sleep(0.001)  # a server that does not block (fakeredis)
            return
        for key, entries in reply:
            topic = topic_of.get(decode_text(key))
            if topic is not None:
                await self._take(group, topic, entries, since, redelivered=False)

    async def _take(
        self, group: str, topic: str, entries: list[Any], since: float, *, redelivered: bool
    ) -> None:
        """Route entries of one topic stream to the local members; dead-letter malformed ones."""
        envelopes: list[Envelope] = []
        for receipt, fields in entries:
            if not fields:
                continue  # deleted while pending
            receipt = decode_text(receipt)
            parsed = parse_entry(receipt, fields, topic)
            if isinstance(parsed, Malformed):
                await self._bury_entry(group, topic, receipt, parsed)
                continue
            attempt = parsed.deliveries + (1 if redelivered else 0)
            envelope = _replace(parsed.envelope, attempt=attempt)
            key = (group, envelope.id)
            if key not in self._receipts:
                self._held[group] += 1
            self._receipts[key] = (topic, receipt, since)
            envelopes.append(envelope)
        if envelopes:
            assert self.dispatcher is not None
            await self.dispatcher.dispatch(group, topic, envelopes)

    async def _bury_entry(self, group: str, topic: str, receipt: str, bad: Malformed) -> None:
        log.error("stream entry %s of %s dead-lettered: %s", receipt, topic, bad.reason)
        envelope = _replace(bad.envelope, topic=topic)
        delivery = Delivery(envelope, group, self.process, envelope.attempt, 0.0, receipt)
        await self._bury_stored(delivery, topic, receipt, bad.reason)

    async def _keep_alive(self, group: str) -> None:
        """Reset the idle time of every entry this process holds, so none is claimed. One
        another process claimed meanwhile (this one was paused) stays with it, and its ack
        here will wait for Redis's answer (a lost lease)."""
        began = time.monotonic()
        by_topic: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for key, (topic, entry, _) in list(self._receipts.items()):
            if key[0] == group:
                by_topic[topic].append((entry, key[1]))
        stream = self._keys.group(group).stream
        for topic, held in by_topic.items():
            held.sort(key=lambda pair: stream_order(pair[0]))
            for start in range(0, len(held), 500):
                chunk = held[start : start + 500]
                ids = [entry for entry, _ in chunk]
                scan = len(ids) + self._buffer
                gone = await self._scripts.keep_alive(
                    [stream(topic)], [self.process, ids[0], ids[-1], scan, *ids]
                )
                lost = {decode_text(entry) for entry in gone}
                for entry, message in chunk:
                    if self._receipts.get((group, message), ("", "", 0.0))[1] == entry:
                        since = float("-inf") if entry in lost else began
                        self._receipts[(group, message)] = (topic, entry, since)

    async def _claim(self, group: str) -> int:
        """Take entries idle past the TTL (their process died) and dispatch them here."""
        claimed = 0
        stream = self._keys.group(group).stream
        for topic in sorted(self._topics_of(group)):
            since = time.monotonic()
            reply = await self._redis.xautoclaim(
                stream(topic),
                CONSUMER_GROUP,
                self.process,
                int(self._ttl * 1000),
                "0-0",
                count=_READ_BATCH,
            )
            entries = reply[1]
            claimed += len(entries)
            mine = [(r, f) for r, f in entries if (group, _envelope_id(f)) not in self._receipts]
            await self._take(group, topic, mine, since, redelivered=True)
            if not entries:  # what the gone processes held is taken: forget them
                await self._scripts.forget_consumers(
                    [stream(topic)], [CONSUMER_GROUP, self.process, int(self._gone * 1000)]
                )
        return claimed

    # -- leasing: local, settled in Redis --------------------------------------------------

    async def fetch(
        self, group: str, member: str, count: int, lease: float, timeout: float
    ) -> list[Delivery]:
        return await self._local.fetch(group, member, count, lease, timeout)

    async def renew(self, deliveries: Sequence[Delivery], lease: float) -> int:
        return await self._local.renew(deliveries, lease)

    def _settled(self, delivery: Delivery) -> tuple[str, str, float] | None:
        receipt = self._receipts.pop((delivery.group, delivery.envelope.id), None)
        if receipt is None:
            return None
        self._held[delivery.group] -= 1
        if self._buffer - self._held[delivery.group] >= min(_READ_BATCH, self._buffer // 2):
            self._room[delivery.group].set()  # wake the reader for a full batch, not for one
        return receipt

    async def ack(self, delivery: Delivery) -> bool:
        if not await self._local.ack(delivery):
            return False
        settled = self._settled(delivery)
        if settled is None:
            return True
        topic, entry, since = settled
        batch = self._acks.get((delivery.group, topic))
        if batch is None:
            batch = self._acks[(delivery.group, topic)] = StreamAcks(
                self, self._keys.group(delivery.group), topic
            )
        # Another process claims an entry only once it was idle for the TTL. While its idle
        # time was reset less than half a TTL ago no one can have, so the ack need not wait;
        # otherwise (this process was paused, its keep-alive late) Redis must say whether the
        # entry is still held, and a refused ack is a lost lease. Waiting also keeps the acks
        # in flight bounded when Redis is behind.
        fresh = time.monotonic() - since < self._ttl / 2
        settling = batch.ack(entry, wait=not fresh or self._unsettled >= self._buffer)
        if settling is not None:
            return await settling
        return True

    async def retry(self, delivery: Delivery, delay: float, error: str) -> bool:
        return await self._local.retry(delivery, delay, error)

    async def bury(self, delivery: Delivery, error: str) -> bool:
        if await self._local.take_back(delivery) is None:
            return False
        settled = self._settled(delivery)
        if settled is not None:
            return await self._bury_stored(delivery, settled[0], settled[1], error)
        keys = self._keys.group(delivery.group)
        failed_at = self._durable.now()
        envelope = delivery.envelope
        record = msgspec.msgpack.encode(DeadLetter(envelope, delivery.group, error, failed_at))
        with translate_errors("dead-letter"):  # pushed here directly, never stored in Redis
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zadd(keys.dead, {envelope.id: failed_at})
                pipe.hset(keys.dead_data, envelope.id, record)
                pipe.hincrby(keys.stats, f"dead:{envelope.topic}", 1)
                pipe.hincrby(keys.stats, f"failed:{envelope.topic}", 1)
                await pipe.execute()
        return True

    async def _bury_stored(self, delivery: Delivery, topic: str, entry: str, error: str) -> bool:
        """Dead-letter an entry of a topic stream this process holds (fenced by the script)."""
        keys = self._keys.group(delivery.group)
        failed_at = self._durable.now()
        envelope = delivery.envelope
        record = msgspec.msgpack.encode(DeadLetter(envelope, delivery.group, error, failed_at))
        with translate_errors("dead-letter"):
            done = await self._scripts.bury(
                [
                    keys.stream(topic),
                    keys.leases(self.process),
                    keys.load,
                    keys.stats,
                    keys.dead,
                    keys.dead_data,
                ],
                [
                    self.process,
                    entry,
                    topic,
                    envelope.id,
                    failed_at,
                    record,
                    self._durable.dead_letter_limit,
                    0,  # hybrid streams are not in the queue counters
                ],
            )
        return bool(done)

    # -- routing storage for the local dispatcher ------------------------------------------

    async def detach(self, group: str, member: str, *, leased: bool = True) -> list[Envelope]:
        return await self._local.detach(group, member, leased=leased)

    async def take_backlog(self, group: str, limit: int) -> list[Envelope]:
        return await self._local.take_backlog(group, limit)

    async def outstanding(self, group: str) -> dict[str, int]:
        return await self._local.outstanding(group)

    async def take_back(self, delivery: Delivery) -> Envelope | None:
        return await self._local.take_back(delivery)

    async def take_expired(self) -> list[tuple[str, Envelope]]:
        return await self._local.take_expired()

    # -- dead letters and observability ----------------------------------------------------

    async def dead_letters(self, group: str | None = None, limit: int = 100) -> list[DeadLetter]:
        return await self._durable.dead_letters(group, limit)

    async def take_dead(self, ids: Sequence[str]) -> list[DeadLetter]:
        return await self._durable.take_dead(ids)

    async def stats(self) -> list[GroupStats]:
        local = {(s.topic, s.group): s for s in await self._local.stats()}
        durable = {(s.topic, s.group): s for s in await self._durable.stats()}
        declared = {
            (topic, group)
            for group in await self._durable.lifetimes.groups()
            for topic in await self._durable.lifetimes.topics(group)
        }  # a stream no process of this client reads still counts what waits in it
        out: list[GroupStats] = []
        for topic, group in sorted(local.keys() | durable.keys() | declared):
            with translate_errors("read stats"):
                waiting = await stored(self._redis, self._keys.group(group).stream(topic))
            here, there = local.get((topic, group)), durable.get((topic, group))
            out.append(combined(topic, group, here, there, waiting))
        return out

    async def ping(self) -> ComponentHealth:
        return await self._durable.ping()


def _envelope_id(fields: dict[bytes, bytes]) -> str:
    try:
        return _decode(fields[b"e"]).id
    except (msgspec.DecodeError, KeyError):
        return ""
