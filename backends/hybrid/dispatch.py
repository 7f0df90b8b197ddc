"""The hybrid dispatcher: publishing goes to Redis, what this process read is routed locally."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

from redis import exceptions as redis_errors

from broker.backends.hybrid.queue import HybridQueue
from broker.backends.redis import (
    CONSUMER_GROUP,
    Keys,
    decode_text,
    encode_envelope,
    translate_errors,
)
from broker.message import Delivery, Envelope
from broker.protocols import Closing, Dispatcher

__all__ = ["HybridDispatcher"]

_READERS_CACHE = 1.0
_BATCH = 1000


class HybridDispatcher(Closing):
    """New messages go to Redis; what a process read is routed locally.

    Args:
        queue: the hybrid queue (it hands what it reads to ``local``).
        local: the in-process dispatcher over the local registry.
        keys: the Redis key names.
        ttl: a process whose reader has been silent this long no longer counts as reading.
    """

    def __init__(
        self, queue: HybridQueue, local: Dispatcher, keys: Keys, *, ttl: float = 30.0
    ) -> None:
        self._queue = queue
        self._local = local
        self._keys = keys
        self._ttl = ttl
        self._reading: dict[tuple[str, str], float] = {}
        queue.dispatcher = local

    async def aclose(self) -> None:
        await self._local.aclose()

    async def dispatch(
        self,
        group: str,
        topic: str,
        envelopes: Sequence[Envelope],
        *,
        require_member: bool = False,
        fan_out: bool = True,
    ) -> int:
        stream = self._keys.group(group).stream(topic)
        if require_member and not await self._read_by_someone(group, topic, stream):
            return 0
        topics = self._queue._durable.topic_groups
        used = topics.view(topic) if fan_out else None  # before any await
        seen = await self._add(group, topic, envelopes)
        if fan_out and not topics.expected(used, group, seen):

            async def send(name: str) -> None:
                await self._add(name, topic, envelopes)

            await topics.unseen(topic, group, used, seen, send)
        return len(envelopes)

    async def _add(self, group: str, topic: str, envelopes: Sequence[Envelope]) -> str:
        """XADD the envelopes to the group's stream in one script call (a batch Redis refuses,
        out of memory, stores none of its messages); returns the topic's groups token read in
        the same step (see `TopicGroups`)."""
        keys = self._keys.group(group)
        args: list[str | bytes | int] = [topic, f"gv:{topic}"]
        for envelope in envelopes:
            args += [envelope.attempt, encode_envelope(envelope)]
        token: object = ""
        with translate_errors("publish"):
            for start in range(2, len(args), 2 * _BATCH):
                token = await self._queue.scripts.hybrid_publish(
                    [keys.stream(topic), keys.state], [*args[:2], *args[start : start + 2 * _BATCH]]
                )
        return decode_text(token)

    async def _read_by_someone(self, group: str, topic: str, stream: str) -> bool:
        """Whether a process reads ``stream``: a consumer of its group that read within the
        TTL (a positive answer is reused for a second)."""
        now = time.monotonic()
        if self._reading.get((group, topic), 0.0) > now:
            return True
        with translate_errors("publish"):
            try:
                consumers = await self._queue._redis.xinfo_consumers(stream, CONSUMER_GROUP)
            except redis_errors.ResponseError:
                return False  # no stream or no consumer group: nobody ever read it
        limit = self._ttl * 1000
        if not any(int(c["idle"]) < limit for c in consumers if decode_text(c["name"])):
            return False
        if len(self._reading) > 10_000:
            self._reading.clear()
        self._reading[(group, topic)] = now + _READERS_CACHE
        return True

    async def reroute(self, group: str, envelopes: Sequence[Envelope]) -> None:
        by_topic: dict[str, list[Envelope]] = defaultdict(list)
        for envelope in envelopes:
            by_topic[envelope.topic].append(envelope)
        for topic, batch in by_topic.items():
            await self._add(group, topic, batch)

    async def handover(self, group: str, member: str, *, leased: bool) -> int:
        return await self._local.handover(group, member, leased=leased)

    async def release(self, delivery: Delivery) -> bool:
        return await self._local.release(delivery)

    async def expire_leases(self) -> int:
        return await self._local.expire_leases()

    async def drain_backlog(self, group: str) -> int:
        return await self._local.drain_backlog(group)
