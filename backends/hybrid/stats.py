"""Stats of hybrid mode: queue lengths read from the topic streams, the rest from counters."""

from __future__ import annotations

from typing import Any

from redis import exceptions as redis_errors

from broker.backends.redis import CONSUMER_GROUP, decode_text
from broker.protocols import GroupStats

__all__ = ["combined", "stored"]


async def stored(redis: Any, stream: str) -> int:
    """Entries of a topic stream not yet acked: unread (lag) plus pending in any process."""
    try:
        groups = await redis.xinfo_groups(stream)
    except redis_errors.ResponseError:
        return 0  # no such stream yet
    for info in groups:
        if decode_text(info["name"]) == CONSUMER_GROUP:
            lag = info.get("lag")
            if lag is None:  # an older server: count what the stream still holds
                return int(await redis.xlen(stream))
            return int(lag) + int(info["pending"])
    return 0


def combined(
    topic: str, group: str, here: GroupStats | None, there: GroupStats | None, waiting: int
) -> GroupStats:
    """One topic's stats: in flight and delayed from this process (``here``), dead and
    processed from Redis's counters (``there``), queued from what the stream holds."""
    in_flight = here.in_flight if here else 0
    delayed = here.delayed if here else 0
    return GroupStats(
        topic=topic,
        group=group,
        queued=max(waiting - in_flight - delayed, 0),
        in_flight=in_flight,
        delayed=delayed,
        dead=there.dead if there else 0,
        processed=there.processed if there else 0,
        failed=(there.failed if there else 0) + (here.failed if here else 0),
    )
