"""The per-topic counters of a group's stats hash (``P:{G}:stats``), read into `GroupStats`.

``queued:T`` counts the topic's entries in the group's streams (inboxes and backlog), changed by
the script that adds or deletes an entry; ``inflight:T`` counts its lease records, changed by the
script that writes or removes one. Each moves in the same atomic step as what it counts, so a
fault between two steps (a fetch whose lease write never ran) cannot leave them off.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from broker.backends.redis.entries import decode_text
from broker.protocols import GroupStats

__all__ = ["group_stats"]


def group_stats(group: str, raw: dict[Any, Any]) -> list[GroupStats]:
    """The stats of each topic of ``group`` from its hash (``HGETALL`` of ``P:{G}:stats``)."""
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for field, value in raw.items():
        kind, _, topic = decode_text(field).partition(":")
        counts[topic][kind] = max(int(value), 0)
    return [
        GroupStats(
            topic=topic,
            group=group,
            queued=max(c.get("queued", 0) - c.get("inflight", 0), 0),
            in_flight=c.get("inflight", 0),
            delayed=c.get("delayed", 0),
            dead=c.get("dead", 0),
            processed=c.get("processed", 0),
            failed=c.get("failed", 0),
        )
        for topic, c in sorted(counts.items())
    ]
