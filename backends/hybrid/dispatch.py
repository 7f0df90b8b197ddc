"""The hybrid dispatcher: publishing goes to Redis, what this process read is routed locally."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from backends.hybrid.queue import HybridQueue
from backends.redis.connection import translate_errors
from backends.redis.keys import Keys
from backends.redis.queue import encode_envelope
from broker.message import Delivery, Envelope
from broker.protocols import Closing, Dispatcher

__all__ = ["HybridDispatcher"]


class HybridDispatcher(Closing):
    """New messages go to Redis; what a process read is routed locally.

    Args:
        queue: the hybrid queue (it hands what it reads to ``local``).
        local: the in-process dispatcher over the local registry.
    """

    def __init__(self, queue: HybridQueue, local: Dispatcher, keys: Keys) -> None:
        self._queue = queue
        self._local = local
        self._keys = keys
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
    ) -> int:
        topics = self._queue._durable.topic_groups
        used = topics.view(topic)  # before any await
        seen = await self._add(group, topic, envelopes)
        if not topics.expected(used, group, seen):

            async def send(name: str) -> None:
                await self._add(name, topic, envelopes)

            await topics.unseen(topic, group, used, seen, send)
        return len(envelopes)

    async def _add(self, group: str, topic: str, envelopes: Sequence[Envelope]) -> str:
        """XADD the envelopes to the group's stream; returns the topic's groups token read
        after them in the same round trip (see `TopicGroups`)."""
        keys = self._keys.group(group)
        stream = keys.stream(topic)
        redis = self._queue._redis
        with translate_errors("publish"):
            async with redis.pipeline(transaction=False) as pipe:
                for envelope in envelopes:
                    pipe.xadd(
                        stream, {"t": topic, "a": envelope.attempt, "e": encode_envelope(envelope)}
                    )
                pipe.hget(keys.state, f"gv:{topic}")
                token = (await pipe.execute())[-1]
        return "" if token is None else token.decode() if isinstance(token, bytes) else str(token)

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
