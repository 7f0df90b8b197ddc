"""Constructors: a client for each backend, from code or from the environment.

Implementations are imported when a constructor runs, so ``import broker`` stays light and
the backends and balancers may import ``broker.message`` and ``broker.protocols`` freely.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from broker.client import Client
from broker.config import Config
from broker.errors import MissingDependency
from broker.protocols import Clock, Strategy, StrategyFactory

__all__ = [
    "client_from_env",
    "new_client",
    "new_hybrid_client",
    "new_memory_client",
    "new_redis_client",
]


def new_memory_client(
    app: str | None = None,
    *,
    strategy: str | StrategyFactory | None = None,
    config: Config | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> Client:
    """A client whose queue and registry live in this process (the embedded default).

    Args:
        app: application name, the default consumer group (overrides ``config.app_name``).
        strategy: a strategy name or a factory of your own `broker.protocols.Strategy`.
        config: timings and limits (default `Config()`).
        clock: time source for leases, delays and heartbeats (a `ManualClock` in tests).
        rng: random source for the strategies and retry jitter.
    """
    from broker.backends.channels import MemoryChannels
    from broker.backends.memory import MemoryQueue
    from broker.balancers.dispatch import LocalDispatcher
    from broker.balancers.local import LocalBalancer
    from broker.balancers.registry import MemoryRegistry
    from broker.clock import SystemClock

    config = _configure(config, app, strategy)
    clock = clock or SystemClock()
    registry = MemoryRegistry(clock, config.heartbeat_ttl)
    balancer = LocalBalancer(registry, strategy or config.strategy, rng)
    queue = MemoryQueue(clock)
    dispatcher = LocalDispatcher(queue, balancer)
    return Client(
        config, queue, registry, dispatcher, channels=MemoryChannels(), clock=clock, rng=rng
    )


def new_redis_client(
    app: str | None = None,
    url: str | None = None,
    *,
    strategy: str | StrategyFactory | None = None,
    config: Config | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    redis: Any = None,
) -> Client:
    """A client on Redis: durable queues, and a registry and strategy shared by every process.

    Args:
        app: application name, the default consumer group (overrides ``config.app_name``).
        url: ``redis://[user:password@]host:port/db`` or ``rediss://`` (overrides
            ``config.redis_url``).
        strategy: a strategy name or a factory of your own `broker.protocols.Strategy`.
        config: timings, limits, key prefix, pool size, cluster mode.
        clock: time source for heartbeats, leases and delays.
        rng: random source for client-side strategies and retry jitter.
        redis: an existing redis-py asyncio client to use instead of connecting (not closed
            by the client).

    Raises:
        MissingDependency: the ``redis`` extra is not installed.
    """
    config = _configure(config, app, strategy, url=url)
    redis, owns, keys, scripts = _redis_parts(config, redis)
    from broker.backends.redis import (
        IN_SCRIPT,
        RedisDispatcher,
        RedisQueue,
        RedisRegistry,
    )
    from broker.balancers.strategies import make_strategy
    from broker.clock import SystemClock

    clock = clock or SystemClock()
    registry = RedisRegistry(redis, keys, scripts, clock, config.heartbeat_ttl)
    chosen = strategy or config.strategy
    if isinstance(chosen, str) and chosen not in IN_SCRIPT:
        name = chosen

        def factory(r: random.Random | None) -> Strategy:
            return make_strategy(name, r)

        chosen = factory
    queue = RedisQueue(
        redis, keys, scripts, clock, owns_client=owns, groups_ttl=config.groups_cache
    )
    dispatcher = RedisDispatcher(
        redis,
        keys,
        scripts,
        registry,
        chosen,
        clock,
        rng,
        lease=config.lease,
        topics=queue.topic_groups,
    )
    return _on_redis(config, (queue, registry, dispatcher), redis, keys, clock, rng, "redis")


def new_hybrid_client(
    app: str | None = None,
    url: str | None = None,
    *,
    strategy: str | StrategyFactory | None = None,
    config: Config | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    redis: Any = None,
) -> Client:
    """A client with the durable queue in Redis and balancing in this process (for throughput).

    Redis gives each message to one process; this process's balancer picks one of its own
    members by the strategy. Arguments as for `new_redis_client`.
    """
    from broker.names import process_id

    config = _configure(config, app, strategy, url=url)
    redis, owns, keys, scripts = _redis_parts(config, redis)
    from broker.backends.hybrid import HybridDispatcher, HybridQueue
    from broker.backends.memory import MemoryQueue
    from broker.backends.redis import RedisQueue
    from broker.balancers.dispatch import LocalDispatcher
    from broker.balancers.local import LocalBalancer
    from broker.balancers.registry import MemoryRegistry
    from broker.clock import SystemClock

    clock = clock or SystemClock()
    durable = RedisQueue(
        redis, keys, scripts, clock, owns_client=owns, groups_ttl=config.groups_cache
    )
    local = MemoryQueue(clock)
    registry = MemoryRegistry(clock, config.heartbeat_ttl)
    balancer = LocalBalancer(registry, strategy or config.strategy, rng)
    process = process_id()

    def topics_of(group: str) -> set[str]:
        return {t for member in registry.live(group).values() for t in member.topics}

    queue = HybridQueue(durable, keys, scripts, local, process, topics_of, ttl=config.heartbeat_ttl)
    dispatcher = HybridDispatcher(
        queue, LocalDispatcher(local, balancer), keys, ttl=config.heartbeat_ttl
    )
    return _on_redis(config, (queue, registry, dispatcher), redis, keys, clock, rng, "hybrid")


def _on_redis(
    config: Config,
    parts: tuple[Any, Any, Any],
    redis: Any,
    keys: Any,
    clock: Clock,
    rng: random.Random | None,
    mode: str,
) -> Client:
    """A client over Redis parts (queue, registry, dispatcher), with Pub/Sub channels and the
    start-up check that records the prefix's mode, or refuses a client of another mode."""
    from broker.backends.redis import RedisChannels, claim_mode

    async def check_mode() -> None:
        await claim_mode(redis, keys, mode)

    queue, registry, dispatcher = parts
    return Client(
        config,
        queue,
        registry,
        dispatcher,
        channels=RedisChannels(redis, keys),
        clock=clock,
        rng=rng,
        checks=[check_mode],
    )


def _redis_parts(config: Config, redis: Any) -> tuple[Any, bool, Any, Any]:
    """The Redis client (connected here unless given), whether the client owns it, the key
    names and the loaded scripts.

    Raises:
        MissingDependency: the ``redis`` extra is not installed.
    """
    try:
        from broker.backends.redis import Keys, Scripts, connect
    except ImportError as exc:
        raise MissingDependency(f"BROKER_MODE={config.mode}", "redis", "redis") from exc
    owns = redis is None
    if redis is None:
        redis = connect(config.redis_url, pool_size=config.pool_size, cluster=config.cluster)
    return redis, owns, Keys(config.prefix), Scripts(redis)


def _configure(
    config: Config | None,
    app: str | None,
    strategy: str | StrategyFactory | None,
    *,
    url: str | None = None,
) -> Config:
    config = config or Config()
    if app is not None:
        config = config.replace(app_name=app)
    if isinstance(strategy, str):
        config = config.replace(strategy=strategy)
    if url is not None:
        config = config.replace(redis_url=url)
    return config


def new_client(config: Config) -> Client:
    """A client for ``config.mode``."""
    if config.mode == "memory":
        return new_memory_client(config=config)
    if config.mode == "redis":
        return new_redis_client(config=config)
    return new_hybrid_client(config=config)


def client_from_env(environ: Mapping[str, str] | None = None) -> Client:
    """A client configured entirely by environment variables (see `Config.from_env`)."""
    return new_client(Config.from_env(environ))
