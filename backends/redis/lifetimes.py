"""Group lifetimes on Redis: when each group last had a live member, and retiring a group.

    P:groups:seen     ZSET    group -> when a live member was last reported (or declared)
    P:{G}:topics      SET     the topics group G is declared on

A retired group is removed from its topics' group sets, so producers stop giving it messages,
and what waited for it moves to its dead letters. Once nothing of it remains it is forgotten.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from broker.backends.redis.connection import translate_errors
from broker.backends.redis.entries import decode_text
from broker.backends.redis.keys import GroupKeys, Keys
from broker.backends.redis.scripts import Scripts
from broker.message import DeadLetter, Envelope

__all__ = ["GroupLifetimes"]

_BATCH = 500


_decode = msgspec.msgpack.Decoder(Envelope).decode
_encode = msgspec.msgpack.Encoder().encode


def _dead_letter(
    receipt: str, fields: dict[bytes, bytes], group: str, reason: str, now: float
) -> DeadLetter:
    topic = decode_text(fields.get(b"t", b""))
    try:
        envelope = _decode(fields[b"e"])
    except (KeyError, msgspec.DecodeError, msgspec.ValidationError):
        envelope = Envelope(id=receipt, topic=topic, payload=fields.get(b"e", b""), created_at=0.0)
    return DeadLetter(envelope, group, reason, now)


class GroupLifetimes:
    """The `broker.protocols.GroupLifetimes` steps of a Redis queue."""

    def __init__(self, redis: Any, keys: Keys, scripts: Scripts, *, dead_letter_limit: int) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = scripts
        self._dead_limit = dead_letter_limit

    async def declared(self, topic: str, group: str, now: float) -> None:
        """Record a declare: the group's topic, and its first sign of life."""
        with translate_errors("declare group"):
            await self._redis.sadd(self._keys.group(group).topics, topic)
            await self._redis.zadd(self._keys.groups_seen, {group: now}, nx=True)

    async def mark_alive(self, groups: Sequence[str], now: float) -> None:
        if groups:
            with translate_errors("mark groups alive"):
                await self._redis.zadd(self._keys.groups_seen, dict.fromkeys(groups, now))

    async def idle_groups(self, before: float, limit: int = 100) -> list[str]:
        with translate_errors("list idle groups"):
            found = await self._redis.zrangebyscore(
                self._keys.groups_seen, "-inf", f"({before}", start=0, num=limit
            )
        return [decode_text(g) for g in found]

    async def groups(self) -> list[str]:
        """Every group under the prefix."""
        with translate_errors("list groups"):
            return sorted(decode_text(g) for g in await self._redis.smembers(self._keys.groups))

    async def topics(self, group: str) -> list[str]:
        """The topics ``group`` is declared on (and those its counters name)."""
        keys = self._keys.group(group)
        with translate_errors("list a group's topics"):
            found = {decode_text(t) for t in await self._redis.smembers(keys.topics)}
            for field in await self._redis.hkeys(keys.stats):
                kind, _, topic = decode_text(field).partition(":")
                if kind == "queued" and topic:
                    found.add(topic)
        return sorted(found)

    async def withdraw(self, topics: Sequence[str], group: str) -> None:
        """Take ``group`` off ``topics``: no producer gives it their messages any more."""
        keys = self._keys.group(group)
        with translate_errors("undeclare group"):
            for topic in topics:
                await self._redis.srem(self._keys.topic_groups(topic), group)
                await self._redis.srem(keys.topics, topic)

    async def move_to_dead(
        self,
        stream: str,
        keys: GroupKeys,
        topics: set[str] | None,
        reason: str,
        *,
        now: float,
        counted: bool,
    ) -> int:
        """Move the entries of ``stream`` of these topics (all when None) to the dead letters."""
        moved, start = 0, "-"
        with translate_errors("retire group"):
            while True:
                entries = await self._redis.xrange(stream, start, "+", count=_BATCH)
                if not entries:
                    return moved
                args: list[str | bytes | float | int] = [now, self._dead_limit, int(counted)]
                for receipt, fields in entries:
                    topic = decode_text(fields.get(b"t", b""))
                    if topics is not None and topic not in topics:
                        continue
                    dead = _dead_letter(decode_text(receipt), fields, keys.name, reason, now)
                    args += [decode_text(receipt), dead.envelope.id, topic, _encode(dead)]
                if len(args) > 3:
                    moved += int(
                        await self._scripts.retire(
                            [stream, keys.dead, keys.dead_data, keys.stats], args
                        )
                    )
                start = "(" + decode_text(entries[-1][0])

    async def forget_if_empty(self, group: str) -> bool:
        """Forget a group with no topic, member, waiting message or dead letter left."""
        keys = self._keys.group(group)
        with translate_errors("forget group"):
            if (
                await self._redis.scard(keys.topics)
                or await self._redis.zcard(keys.members)
                or await self._redis.xlen(keys.backlog)
                or await self._redis.zcard(keys.dead)
            ):
                return False
            await self._redis.zrem(self._keys.groups_seen, group)
            await self._redis.srem(self._keys.groups, group)
            await self._redis.delete(keys.stats, keys.backlog, keys.topics)
        return True
