"""A producer's list of the groups on each topic, kept fresh by a version the routing reads.

`declare` adds a group to ``P:topic:T:groups`` and then writes a new token to the field
``gv:T`` of the state hash of every group on the topic (each in its group's slot). Every
publish reads that field of the group it routes to in the same call that stores the message
(``dispatch.lua``, or the hybrid XADD pipeline). A producer keeps, with each list it read,
the token of each group as seen before that read: when a publish sees another token, a group
may have been declared since, so the producer reads the list again and sends the same
messages to the groups it did not know. So a group is seen by every producer from the moment
`declare` returns, with no wait and no extra round trip while nothing changes.

Why that holds: a token seen before the list was read, and still found by a publish, means
no declare bumped it since the read; a declare that returned earlier added its group before
the read. A token is never paired with a list read before it was seen.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from broker.backends.redis.connection import translate_errors
from broker.backends.redis.entries import decode_text
from broker.backends.redis.keys import Keys

__all__ = ["GroupsView", "TopicGroups"]

_MAX_TOPICS = 10_000


class GroupsView:
    """One read of a topic's groups, with the tokens seen before it (immutable)."""

    __slots__ = ("expires", "groups", "versions")

    def __init__(self, groups: list[str], versions: dict[str, str], expires: float) -> None:
        self.groups = groups
        self.versions = versions
        self.expires = expires


class TopicGroups:
    """The groups on each topic, as one producer knows them.

    Args:
        client: a redis-py asyncio client (standalone or cluster).
        keys: key names under the client's prefix.
        max_age: seconds a list is reused before it is read again (a new group is seen at
            once through the tokens; a removed one once the list is read again).
    """

    def __init__(self, client: Any, keys: Keys, max_age: float) -> None:
        self._redis = client
        self._keys = keys
        self._max_age = max_age
        self._views: dict[str, GroupsView] = {}

    def field(self, topic: str) -> str:
        """The field of a group's state hash that holds the topic's token."""
        return f"gv:{topic}"

    def view(self, topic: str) -> GroupsView | None:
        """The list a publish of ``topic`` uses now (None if it was never read)."""
        return self._views.get(topic)

    def forget(self, topic: str) -> None:
        """Read the topic's groups again at its next publish (a group was taken off it)."""
        self._views.pop(topic, None)

    async def groups(self, topic: str) -> list[str]:
        """The groups on ``topic`` (read again after ``max_age``, never cached while empty)."""
        view = self._views.get(topic)
        if view is not None and view.expires > time.monotonic():
            return view.groups
        return (await self._read(topic, view, {})).groups

    async def _read(self, topic: str, old: GroupsView | None, seen: dict[str, str]) -> GroupsView:
        with translate_errors("read groups"):
            found = sorted(
                decode_text(g) for g in await self._redis.smembers(self._keys.topic_groups(topic))
            )
        versions = {g: v for g, v in (old.versions if old else {}).items() if g in found}
        versions.update((g, v) for g, v in seen.items() if g in found)
        view = GroupsView(found, versions, time.monotonic() + self._max_age)
        if len(self._views) > _MAX_TOPICS:
            self._views.clear()
        if found:
            self._views[topic] = view
        else:
            self._views.pop(topic, None)
        return view

    async def declare(self, topic: str, group: str) -> None:
        """Add ``group`` to ``topic``, then give every group on it a new token."""
        with translate_errors("declare group"):
            await self._redis.sadd(self._keys.topic_groups(topic), group)
            await self._redis.sadd(self._keys.groups, group)
            groups = await self._redis.smembers(self._keys.topic_groups(topic))
            token = secrets.token_hex(8)
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in groups:
                    pipe.hset(self._keys.group(decode_text(name)).state, self.field(topic), token)
                await pipe.execute()

    @staticmethod
    def expected(used: GroupsView | None, group: str, seen: str) -> bool:
        """Whether a publish that used ``used`` and found token ``seen`` of ``group`` knew
        every group (the common case: nothing to do)."""
        return used is not None and used.versions.get(group) == seen

    async def unseen(
        self,
        topic: str,
        group: str,
        used: GroupsView | None,
        seen: str,
        send: Callable[[str], Awaitable[object]],
    ) -> None:
        """After a publish to ``group`` found token ``seen``: if the list it used did not
        expect it, read the list again and ``send`` the messages to each group it lacked."""
        if self.expected(used, group, seen):
            return
        fresh = await self._read(topic, self._views.get(topic), {group: seen})
        known = {group, *(used.groups if used is not None else ())}
        for name in fresh.groups:
            if name not in known:
                await send(name)
