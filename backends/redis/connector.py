"""The connector of ``redis://``, ``rediss://``, ``unix://`` and their ``+cluster`` forms, and
the parts it shares with the hybrid connector."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from broker.backend import Backend, BackendRequest
from broker.backends.redis.channels import RedisChannels
from broker.backends.redis.connection import connect
from broker.backends.redis.dispatch import IN_SCRIPT, RedisDispatcher
from broker.backends.redis.keys import Keys
from broker.backends.redis.mode import claim_mode
from broker.backends.redis.queue import RedisQueue
from broker.backends.redis.registry import RedisRegistry
from broker.backends.redis.scripts import Scripts
from broker.balancers.strategies import make_strategy
from broker.protocols import Dispatcher, Queue, Registry, Strategy, StrategyFactory

__all__ = ["RedisParts", "connect_redis", "redis_backend", "redis_parts"]


@dataclasses.dataclass(frozen=True, slots=True)
class RedisParts:
    """A backend's Redis connection and what is built on it once.

    Attributes:
        redis: the redis-py asyncio client (or cluster client).
        owns: whether closing the backend closes ``redis`` (it was connected here).
        keys: the key names under the configured prefix.
        scripts: the Lua scripts, loaded on ``redis``.
    """

    redis: Any
    owns: bool
    keys: Keys
    scripts: Scripts

    def durable_queue(self, request: BackendRequest) -> RedisQueue:
        """The Redis queue on these parts."""
        return RedisQueue(
            self.redis,
            self.keys,
            self.scripts,
            request.clock,
            owns_client=self.owns,
            groups_ttl=request.config.groups_cache,
        )


def redis_parts(request: BackendRequest) -> RedisParts:
    """Connect (unless the request's ``redis`` option gives a client) and load the scripts."""
    config, redis = request.config, request.option("redis")
    owns = redis is None
    if redis is None:
        redis = connect(config.redis_url, pool_size=config.pool_size, cluster=config.cluster)
    return RedisParts(redis, owns, Keys(config.prefix), Scripts(redis))


def redis_backend(
    parts: RedisParts, queue: Queue, registry: Registry, dispatcher: Dispatcher, mode: str
) -> Backend:
    """A backend over Redis parts, with Pub/Sub channels and the start-up check that records
    the prefix's mode, or refuses a client of another mode on the same prefix."""

    async def check_mode() -> None:
        await claim_mode(parts.redis, parts.keys, mode)

    channels = RedisChannels(parts.redis, parts.keys)
    return Backend(queue, registry, dispatcher, channels, checks=(check_mode,))


def connect_redis(request: BackendRequest) -> Backend:
    """Queue, registry and strategy state in Redis, shared by every process."""
    parts = redis_parts(request)
    registry = RedisRegistry(
        parts.redis, parts.keys, parts.scripts, request.clock, request.config.heartbeat_ttl
    )
    queue = parts.durable_queue(request)
    dispatcher = RedisDispatcher(
        parts.redis,
        parts.keys,
        parts.scripts,
        registry,
        _in_client(request.strategy),
        request.clock,
        request.rng,
        lease=request.config.lease,
        topics=queue.topic_groups,
    )
    return redis_backend(parts, queue, registry, dispatcher, "redis")


def _in_client(strategy: str | StrategyFactory) -> str | StrategyFactory:
    """A strategy the dispatch script runs stays a name; any other becomes a factory."""
    if not isinstance(strategy, str) or strategy in IN_SCRIPT:
        return strategy
    name = strategy

    def factory(rng: random.Random | None) -> Strategy:
        return make_strategy(name, rng)

    return factory
