"""Every Redis key name the backend uses, built here and nowhere else.

All keys of one consumer group share the hash tag ``{group}``, so every script touches one
slot and the backend runs unchanged on Redis Cluster. Two keys are per topic or global, and
only single-key commands touch them.

    P:mode                        STRING  the mode of the clients on this prefix (redis, hybrid)
    P:groups                      SET     every group known (for cleanup and stats)
    P:groups:seen                 ZSET    group -> when it last had a live member (retention)
    P:topic:T:groups              SET     the groups declared on topic T
    P:{G}:topics                  SET     the topics G is declared on
    P:{G}:members                 ZSET    member -> last heartbeat (client clock)
    P:{G}:info:M                  HASH    member info (topics, weight, joined_at, counters)
    P:{G}:weights                 HASH    member -> weight
    P:{G}:topic:T                 SET     live members of G that handle topic T
    P:{G}:version                 STRING  bumped on every membership or weight change
    P:{G}:state                   HASH    strategy state (round-robin position, smooth weights)
    P:{G}:load                    HASH    member -> outstanding messages (least_conn)
    P:{G}:inbox:M                 STREAM  a member's messages; consumer group "broker"
    P:{G}:leases:M                ZSET    stream id -> lease deadline (client clock)
    P:{G}:expiry                  ZSET    member -> when cleanup looks at its leases next (its
                                          earliest lease, written by its heartbeat)
    P:{G}:delayed:M               ZSET    "attempt|topic|envelope" -> due time of a retry
    P:{G}:backlog                 STREAM  messages waiting for a member
    P:{G}:dead                    ZSET    message id -> failed_at
    P:{G}:dead:data               HASH    message id -> encoded dead letter
    P:{G}:stats                   HASH    per-topic counters: processed:T, failed:T, ...
    P:{G}:stream:T                STREAM  hybrid mode: the group's messages of topic T; consumer
                                          group "broker", one consumer per process
    P:channel:C                   PUBSUB  channel C (events, RPC replies): no key is stored
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["CONSUMER_GROUP", "GroupKeys", "Keys"]

CONSUMER_GROUP = "broker"


class GroupKeys:
    """The keys of one consumer group (all in the group's hash slot)."""

    __slots__ = (
        "backlog",
        "dead",
        "dead_data",
        "expiry",
        "load",
        "members",
        "name",
        "state",
        "stats",
        "tag",
        "topics",
        "version",
        "weights",
    )

    def __init__(self, prefix: str, group: str) -> None:
        self.name = group
        self.tag = f"{prefix}:{{{group}}}"
        self.members = f"{self.tag}:members"
        self.weights = f"{self.tag}:weights"
        self.version = f"{self.tag}:version"
        self.state = f"{self.tag}:state"
        self.load = f"{self.tag}:load"
        self.expiry = f"{self.tag}:expiry"
        self.backlog = f"{self.tag}:backlog"
        self.dead = f"{self.tag}:dead"
        self.dead_data = f"{self.tag}:dead:data"
        self.stats = f"{self.tag}:stats"
        self.topics = f"{self.tag}:topics"

    def topic(self, topic: str) -> str:
        return f"{self.tag}:topic:{topic}"

    def info(self, member: str) -> str:
        return f"{self.tag}:info:{member}"

    def stream(self, topic: str) -> str:
        return f"{self.tag}:stream:{topic}"

    def inbox(self, member: str) -> str:
        return f"{self.tag}:inbox:{member}"

    def leases(self, member: str) -> str:
        return f"{self.tag}:leases:{member}"

    def delayed(self, member: str) -> str:
        return f"{self.tag}:delayed:{member}"

    def routing(self) -> list[str]:
        """The fixed KEYS every routing script starts with (see lua/lib.lua)."""
        return [self.weights, self.state, self.load, self.backlog, self.version, self.stats]


class Keys:
    """Key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.mode = f"{prefix}:mode"
        self.groups = f"{prefix}:groups"
        self.groups_seen = f"{prefix}:groups:seen"

    def channel(self, name: str) -> str:
        return f"{self.prefix}:channel:{name}"

    def topic_groups(self, topic: str) -> str:
        return f"{self.prefix}:topic:{topic}:groups"

    @lru_cache(maxsize=4096)  # noqa: B019 - one Keys per client, bounded
    def group(self, group: str) -> GroupKeys:
        return GroupKeys(self.prefix, group)
