"""The registry of live members in Redis: a heartbeat is one script call, O(log N) in the
group's members; eviction reads only the members whose last beat is past the TTL."""

from __future__ import annotations

from typing import Any

from broker.backends.redis.connection import translate_errors
from broker.backends.redis.entries import decode_text
from broker.backends.redis.keys import Keys
from broker.backends.redis.scripts import Scripts
from broker.protocols import Clock, Closing, MemberInfo

__all__ = ["RedisRegistry"]


class RedisRegistry(Closing):
    """Members per group in a sorted set by last heartbeat, with an info hash each.

    Args:
        client: a redis-py asyncio client (standalone or cluster).
        keys: key names under the client's prefix.
        scripts: the loaded Lua scripts.
        clock: time source for heartbeats (scores are this clock's seconds).
        ttl: seconds of silence after which `evict_expired` removes a member.
    """

    def __init__(self, client: Any, keys: Keys, scripts: Scripts, clock: Clock, ttl: float) -> None:
        self._redis = client
        self._keys = keys
        self._scripts = scripts
        self._clock = clock
        self._ttl = ttl

    async def aclose(self) -> None:
        return None

    async def register(self, member: MemberInfo) -> None:
        keys = self._keys.group(member.group)
        with translate_errors("register"):
            await self._scripts.join(
                [keys.members, keys.info(member.id), keys.weights, keys.version]
                + [keys.topic(t) for t in member.topics],
                [member.id, self._clock.now(), member.weight, ",".join(member.topics)],
            )
            await self._redis.sadd(self._keys.groups, member.group)

    async def heartbeat(
        self, group: str, member: str, *, in_flight: int, processed: int, failed: int
    ) -> bool:
        keys = self._keys.group(group)
        with translate_errors("heartbeat"):
            beat = await self._scripts.heartbeat(
                [
                    keys.members,
                    keys.info(member),
                    keys.inbox(member),
                    keys.leases(member),
                    keys.expiry,
                ],
                [member, self._clock.now(), in_flight, processed, failed],
            )
        return bool(beat)

    async def _leave(self, group: str, member: str, deadline: str) -> MemberInfo | None:
        keys = self._keys.group(group)
        info = await self._info(group, member)
        if info is None:
            return None
        left = await self._scripts.leave(
            [keys.members, keys.info(member), keys.weights, keys.version, keys.state]
            + [keys.expiry]
            + [keys.topic(t) for t in info.topics],
            [member, deadline],
        )
        return info if left else None

    async def deregister(self, group: str, member: str) -> None:
        with translate_errors("deregister"):
            await self._leave(group, member, "+inf")

    async def _info(self, group: str, member: str) -> MemberInfo | None:
        raw = await self._redis.hgetall(self._keys.group(group).info(member))
        return _member(group, member, raw) if raw else None

    async def members(self, group: str) -> list[MemberInfo]:
        keys = self._keys.group(group)
        with translate_errors("list members"):
            ids = [decode_text(m) for m in await self._redis.zrange(keys.members, 0, -1)]
            if not ids:
                return []
            async with self._redis.pipeline(transaction=False) as pipe:
                for member in ids:
                    pipe.hgetall(keys.info(member))
                infos = await pipe.execute()
        found = [_member(group, m, raw) for m, raw in zip(ids, infos, strict=True) if raw]
        return sorted(found, key=lambda m: m.id)

    async def version(self, group: str) -> int:
        """A number that changes whenever membership or a weight of ``group`` changes."""
        with translate_errors("read registry version"):
            return int(await self._redis.get(self._keys.group(group).version) or 0)

    async def set_weight(self, group: str, member: str, weight: int) -> bool:
        keys = self._keys.group(group)
        with translate_errors("set weight"):
            done = await self._scripts.set_weight(
                [keys.members, keys.info(member), keys.weights, keys.version], [member, weight]
            )
        return bool(done)

    async def groups(self) -> list[str]:
        """Every group that ever had a member."""
        with translate_errors("list groups"):
            return sorted(decode_text(g) for g in await self._redis.smembers(self._keys.groups))

    async def evict_expired(self) -> list[MemberInfo]:
        deadline = self._clock.now() - self._ttl
        evicted: list[MemberInfo] = []
        with translate_errors("evict members"):
            for group in await self.groups():
                keys = self._keys.group(group)
                late = await self._redis.zrangebyscore(keys.members, "-inf", f"({deadline}")
                for member in late:
                    info = await self._leave(group, decode_text(member), repr(deadline))
                    if info is not None:
                        evicted.append(info)
        return evicted


def _member(group: str, member: str, raw: dict[Any, Any]) -> MemberInfo:
    info = {decode_text(k): decode_text(v) for k, v in raw.items()}
    topics = tuple(t for t in info.get("topics", "").split(",") if t)
    return MemberInfo(
        id=member,
        group=group,
        topics=topics,
        weight=int(info.get("weight", 1)),
        joined_at=float(info.get("joined_at", 0.0)),
        last_seen=float(info.get("last_seen", 0.0)),
        in_flight=int(info.get("in_flight", 0)),
        processed=int(info.get("processed", 0)),
        failed=int(info.get("failed", 0)),
    )
