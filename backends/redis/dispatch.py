"""Routing on Redis: the strategy decides and the message is stored in one script call.

Round-robin, weighted and least-connections run inside the script over state kept in Redis,
so every producer process shares one rotation, one set of smooth weights and one count of
outstanding messages. Consistent hashing and user strategies choose in the client from a
registry snapshot (with each member's outstanding count from the group's load hash when
the strategy reads load); the script only checks the chosen member is still live.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from broker.backends.redis.connection import translate_errors
from broker.backends.redis.entries import decode_text
from broker.backends.redis.keys import GroupKeys, Keys
from broker.backends.redis.queue import encode_envelope
from broker.backends.redis.registry import RedisRegistry
from broker.backends.redis.scripts import Call, Scripts
from broker.backends.redis.topics import TopicGroups
from broker.errors import InvalidArgument
from broker.message import Delivery, Envelope
from broker.protocols import Candidate, Clock, Closing, MemberInfo, Strategy, StrategyFactory

__all__ = ["IN_SCRIPT", "RedisDispatcher"]

IN_SCRIPT = ("round_robin", "weighted", "least_conn")
"""Strategies the routing script runs itself; any other is given as a client-side factory."""
_BATCH = 500
_PEEK = 1000


class RedisDispatcher(Closing):
    """Places messages on members with the routing scripts (see ``lua/lib.lua``).

    Args:
        client: a redis-py asyncio client.
        keys, scripts, registry: the backend's key names, scripts and registry.
        strategy: one of `IN_SCRIPT`, or a factory of a client-side strategy (consistent
            hashing, your own) whose choice the script checks is live.
        clock: time source for lease expiry.
        lease: seconds; a pending entry with no lease record idle this long is taken back.
        rng: random source for client-side strategies.
        topics: the producer's lists of groups per topic (`RedisQueue.topic_groups`): a
            publish that finds a group's token changed sends its messages to the groups
            declared since (see `TopicGroups`).
    """

    def __init__(
        self,
        client: Any,
        keys: Keys,
        scripts: Scripts,
        registry: RedisRegistry,
        strategy: str | StrategyFactory,
        clock: Clock,
        rng: random.Random | None = None,
        *,
        lease: float = 30.0,
        topics: TopicGroups | None = None,
    ) -> None:
        self._redis = client
        self._lease = lease
        self._keys = keys
        self._scripts = scripts
        self._registry = registry
        self._clock = clock
        if isinstance(strategy, str):
            if strategy not in IN_SCRIPT:
                raise InvalidArgument("strategy", strategy, ", ".join(IN_SCRIPT) + " or a factory")
            self._name = strategy
            self._factory: StrategyFactory | None = None
        else:
            self._name = "client"
            self._factory = strategy
        self._uses_load = self._factory is not None and bool(
            getattr(self._factory(rng), "uses_load", False)
        )
        self._topics = topics
        self._rng = rng
        self._strategies: dict[str, Strategy] = {}
        self._snapshots: dict[str, tuple[int, list[MemberInfo]]] = {}
        self._heads: dict[
            tuple[str, str],
            tuple[list[MemberInfo], list[str], list[str | bytes | int | float], list[MemberInfo]],
        ] = {}

    async def aclose(self) -> None:
        self._snapshots.clear()
        self._heads.clear()

    # -- the registry snapshot -------------------------------------------------------------

    async def _members(self, group: str) -> list[MemberInfo]:
        found = self._snapshots.get(group)
        if found is None:
            version = await self._registry.version(group)
            found = (version, await self._registry.members(group))
            self._snapshots[group] = found
        return found[1]

    def _seen(self, group: str, reply: Sequence[Any]) -> bool:
        """Forget the snapshot when the script saw another registry version (or a stale hint);
        True if it did."""
        snapshot = self._snapshots.get(group)
        if snapshot is None or int(reply[1]) != snapshot[0] or int(reply[2]):
            self._snapshots.pop(group, None)
            return True
        return False

    async def _routing(
        self, group: str, topics: Sequence[str], extra_keys: Sequence[str]
    ) -> tuple[list[str], list[str | bytes | int | float], list[MemberInfo]]:
        """KEYS and ARGV heads of a routing script (the layout of ``lua/lib.lua``); fresh
        lists the caller may extend, built once per snapshot for a publish's single topic."""
        snapshot = await self._members(group)
        if extra_keys or len(topics) != 1:
            return self._routing_of(group, snapshot, topics, extra_keys)
        key = (group, topics[0])
        cached = self._heads.get(key)
        if cached is None or cached[0] is not snapshot:
            if len(self._heads) > 10_000:
                self._heads.clear()
            cached = self._heads[key] = (snapshot, *self._routing_of(group, snapshot, topics, ()))
        _, script_keys, args, members = cached
        return list(script_keys), list(args), members

    def _routing_of(
        self,
        group: str,
        snapshot: list[MemberInfo],
        topics: Sequence[str],
        extra_keys: Sequence[str],
    ) -> tuple[list[str], list[str | bytes | int | float], list[MemberInfo]]:
        keys = self._keys.group(group)
        members = [m for m in snapshot if set(m.topics) & set(topics)]
        script_keys = [*keys.routing(), *extra_keys]
        script_keys += [keys.topic(t) for t in topics]
        script_keys += [keys.inbox(m.id) for m in members]
        args: list[str | bytes | int | float] = [self._name, len(topics), *topics, len(members)]
        args += [m.id for m in members]
        return script_keys, args, members

    def _hint(
        self,
        group: str,
        envelope: Envelope,
        members: list[MemberInfo],
        load: dict[str, int] | None,
    ) -> str:
        if self._factory is None:
            return ""
        if load is None:
            candidates = [Candidate(m.id, m.weight) for m in members if envelope.topic in m.topics]
        else:
            candidates = [
                Candidate(m.id, m.weight, load.get(m.id, 0))
                for m in members
                if envelope.topic in m.topics
            ]
        if not candidates:
            return ""
        strategy = self._strategies.get(group)
        if strategy is None:
            strategy = self._strategies[group] = self._factory(self._rng)
        chosen = strategy.select(envelope, candidates).id
        if load is not None:
            load[chosen] = load.get(chosen, 0) + 1
        return chosen

    async def _load(self, group: str, members: list[MemberInfo]) -> dict[str, int] | None:
        """Outstanding messages per member (the group's load hash), for a strategy that
        reads load; None for any other."""
        if not self._uses_load or not members:
            return None
        counts = await self._redis.hmget(self._keys.group(group).load, [m.id for m in members])
        return {m.id: int(c or 0) for m, c in zip(members, counts, strict=True)}

    # -- routing ---------------------------------------------------------------------------

    async def dispatch(
        self,
        group: str,
        topic: str,
        envelopes: Sequence[Envelope],
        *,
        require_member: bool = False,
        fan_out: bool = True,
    ) -> int:
        """Place each envelope on a live member of ``group`` (or its backlog); returns how
        many went to a member. With ``require_member``, one that finds no live member
        handling ``topic`` is not stored at all.

        With ``fan_out`` (a publish to every group on the topic), also sends the envelopes to
        every group declared on ``topic`` that the producer's list used for this publish did
        not hold (see `TopicGroups`); without it (a task or request), to ``group`` only.
        """
        topics = self._topics if fan_out else None
        used = topics.view(topic) if topics is not None else None  # before any await
        placed, seen = await self._dispatch(group, topic, envelopes, require_member)
        if topics is not None and not topics.expected(used, group, seen):

            async def send(name: str) -> None:
                await self._dispatch(name, topic, envelopes, require_member)

            await topics.unseen(topic, group, used, seen, send)
        return placed

    async def _dispatch(
        self, group: str, topic: str, envelopes: Sequence[Envelope], required: bool
    ) -> tuple[int, str]:
        """Place the envelopes; returns how many went to a member, and the topic's groups
        token as the first script call saw it."""
        placed, seen = 0, ""
        with translate_errors("publish"):
            for start in range(0, len(envelopes), _BATCH):
                batch = envelopes[start : start + _BATCH]
                reply = await self._place(group, topic, batch, required)
                if start == 0:
                    seen = decode_text(reply[3])
                placed += int(reply[0])
                if self._seen(group, reply) and int(reply[0]) < len(batch):
                    # members changed: route with fresh ones
                    if required:
                        refused = [batch[int(i) - 1] for i in reply[4]]
                        reply = await self._place(group, topic, refused, True)
                        self._seen(group, reply)
                        placed += int(reply[0])
                    else:
                        await self.drain_backlog(group)
        return placed, seen

    async def _place(
        self, group: str, topic: str, batch: Sequence[Envelope], required: bool
    ) -> Any:
        keys, args, members = await self._routing(group, [topic], [])
        args.append("1" if required else "0")
        load = await self._load(group, members)
        for envelope in batch:
            args += [self._hint(group, envelope, members, load), encode_envelope(envelope)]
        return await self._scripts.dispatch(keys, args)

    async def reroute(self, group: str, envelopes: Sequence[Envelope]) -> None:
        by_topic: dict[str, list[Envelope]] = {}
        for envelope in envelopes:
            by_topic.setdefault(envelope.topic, []).append(envelope)
        for topic, batch in by_topic.items():
            await self._dispatch(group, topic, batch, False)

    async def release(self, delivery: Delivery) -> bool:
        keys = self._keys.group(delivery.group)
        member = delivery.member
        with translate_errors("release"):
            script_keys, args, _ = await self._routing(
                delivery.group,
                [delivery.envelope.topic],
                [keys.inbox(member), keys.leases(member)],
            )
            args += [member, delivery.receipt, delivery.attempt - 1]
            args.append(encode_envelope(delivery.envelope))
            reply = await self._scripts.release(script_keys, args)
        self._seen(delivery.group, reply)
        return bool(reply[3])

    async def _topics_in(self, keys: GroupKeys, stream: str, delayed: str | None) -> list[str]:
        """The topics of the first entries of a stream (and a delayed set): the KEYS to pass."""
        topics = {
            decode_text(fields[b"t"])
            for _, fields in await self._redis.xrange(stream, "-", "+", count=_PEEK)
            if b"t" in fields  # a malformed entry: its reader dead-letters it
        }
        if delayed is not None:
            for record in await self._redis.zrange(delayed, 0, _PEEK - 1):
                topics.add(record.split(b"|", 2)[1].decode())
        return sorted(topics)

    async def _repeat(
        self,
        group: str,
        call: Call,
        topics_of: Any,
        extra: list[str],
        tail: list[str | int | float],
    ) -> int:
        moved, refreshed = 0, False
        while True:
            topics = await topics_of()
            script_keys, args, _ = await self._routing(group, topics, extra)
            reply = await call(script_keys, [*args, *tail])
            stale = self._seen(group, reply)
            moved += int(reply[0])
            if not topics or (len(reply) > 3 and int(reply[3]) == 0):
                return moved
            if int(reply[0]) == 0:
                if not stale or refreshed:
                    return moved
                refreshed = True  # once more with the members the script saw

    async def handover(self, group: str, member: str, *, leased: bool) -> int:
        keys = self._keys.group(group)
        inbox, delayed = keys.inbox(member), keys.delayed(member)

        async def topics_of() -> list[str]:
            return await self._topics_in(keys, inbox, delayed)

        with translate_errors("hand over"):
            return await self._repeat(
                group,
                self._scripts.handover,
                topics_of,
                [inbox, keys.leases(member), delayed],
                [member, "1" if leased else "0", _PEEK],
            )

    async def expire_leases(self) -> int:
        """Take back ran-out leases: per group, one read of the expiry index (the members
        whose earliest lease is due, kept by their heartbeats), then one script per due
        member."""
        moved = 0
        now = self._clock.now()
        with translate_errors("expire leases"):
            for group in await self._registry.groups():
                keys = self._keys.group(group)
                for raw in await self._redis.zrangebyscore(keys.expiry, "-inf", now):
                    moved += await self._expire(keys, decode_text(raw), now)
        return moved

    async def _expire(self, keys: GroupKeys, member: str, now: float) -> int:
        topics = await self._redis.hget(keys.info(member), "topics")
        if topics is None:  # left or evicted: its messages are handed over, not expired
            await self._redis.zrem(keys.expiry, member)
            return 0
        script_keys, args, _ = await self._routing(
            keys.name,
            [t for t in decode_text(topics).split(",") if t],
            [keys.inbox(member), keys.leases(member), keys.expiry],
        )
        reply = await self._scripts.expire(
            script_keys, [*args, member, now, _PEEK, int(self._lease * 1000)]
        )
        self._seen(keys.name, reply)
        return int(reply[0])

    async def drain_backlog(self, group: str) -> int:
        keys = self._keys.group(group)

        async def topics_of() -> list[str]:
            return await self._topics_in(keys, keys.backlog, None)

        with translate_errors("drain backlog"):
            return await self._repeat(group, self._scripts.drain, topics_of, [], [_PEEK])
