"""The in-process registry of live members, kept by heartbeats."""

from __future__ import annotations

import msgspec

from broker.protocols import Clock, Closing, MemberInfo

__all__ = ["MemoryRegistry"]

_replace = msgspec.structs.replace


class MemoryRegistry(Closing):
    """Members per group in a dict; a heartbeat is one dict update.

    Args:
        clock: time source for ``joined_at`` / ``last_seen``.
        ttl: seconds of silence after which `evict_expired` removes a member.
    """

    def __init__(self, clock: Clock, ttl: float) -> None:
        self._clock = clock
        self._ttl = ttl
        self._groups: dict[str, dict[str, MemberInfo]] = {}
        self.version = 0
        """Bumped on every change of membership or weight, so callers can cache candidates."""

    async def aclose(self) -> None:
        self._groups.clear()
        self.version += 1

    async def register(self, member: MemberInfo) -> None:
        now = self._clock.now()
        self._groups.setdefault(member.group, {})[member.id] = _replace(
            member, joined_at=now, last_seen=now
        )
        self.version += 1

    async def heartbeat(
        self, group: str, member: str, *, in_flight: int, processed: int, failed: int
    ) -> bool:
        members = self._groups.get(group)
        info = members.get(member) if members is not None else None
        if members is None or info is None:
            return False
        members[member] = _replace(
            info,
            last_seen=self._clock.now(),
            in_flight=in_flight,
            processed=processed,
            failed=failed,
        )
        return True

    async def deregister(self, group: str, member: str) -> None:
        members = self._groups.get(group)
        if members is not None and members.pop(member, None) is not None:
            self.version += 1

    async def members(self, group: str) -> list[MemberInfo]:
        return sorted(self._groups.get(group, {}).values(), key=lambda m: m.id)

    def live(self, group: str) -> dict[str, MemberInfo]:
        """The members of ``group`` without copying (for the local balancer)."""
        return self._groups.get(group, {})

    def group_names(self) -> list[str]:
        return sorted(self._groups)

    async def set_weight(self, group: str, member: str, weight: int) -> bool:
        members = self._groups.get(group)
        info = members.get(member) if members is not None else None
        if members is None or info is None:
            return False
        members[member] = _replace(info, weight=weight)
        self.version += 1
        return True

    async def evict_expired(self) -> list[MemberInfo]:
        deadline = self._clock.now() - self._ttl
        evicted: list[MemberInfo] = []
        for members in self._groups.values():
            late = [m for m in members.values() if m.last_seen < deadline]
            for info in late:
                del members[info.id]
            evicted.extend(late)
        if evicted:
            self.version += 1
        return evicted
