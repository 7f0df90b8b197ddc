"""Constructors: `connect` picks the backend by URL; one named constructor per built-in backend.

Each is a thin wrapper of `Client.from_url`: the backend itself is built by the connector that
`broker.connectors` finds for the URL's scheme, imported on first use, so ``import broker`` loads
no driver.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from broker.client import Client
from broker.config import Config
from broker.protocols import Clock, StrategyFactory

__all__ = [
    "client_from_env",
    "connect",
    "new_client",
    "new_hybrid_client",
    "new_memory_client",
    "new_redis_client",
]


connect = Client.from_url
"""A client on the backend ``url`` names: ``memory://``, ``redis://host:6379/0``, ``rediss://``,
``unix://``, ``redis+cluster://``, ``hybrid+redis://`` or a plug-in's scheme (`Client.from_url`)."""


def new_memory_client(
    app: str | None = None,
    *,
    strategy: str | StrategyFactory | None = None,
    config: Config | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> Client:
    """A client whose queue and registry live in this process (the embedded default);
    ``connect("memory://", ...)``.

    Args:
        app: application name, the default consumer group (overrides ``config.app_name``).
        strategy: a strategy name or a factory of your own `broker.protocols.Strategy`.
        config: timings and limits (default `Config()`).
        clock: time source for leases, delays and heartbeats (a `ManualClock` in tests).
        rng: random source for the strategies and retry jitter.
    """
    return connect("memory://", app=app, strategy=strategy, config=config, clock=clock, rng=rng)


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
    """A client on Redis: durable queues, and a registry and strategy shared by every process;
    ``connect("redis://...", ...)``.

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
    return connect(
        _redis_url(config, url),
        app=app,
        strategy=strategy,
        config=config,
        clock=clock,
        rng=rng,
        redis=redis,
    )


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
    """A client with the durable queue in Redis and balancing in this process (for throughput);
    ``connect("hybrid+redis://...", ...)``.

    Redis gives each message to one process; this process's balancer picks one of its own
    members by the strategy. Arguments as for `new_redis_client`.
    """
    return connect(
        "hybrid+" + _redis_url(config, url),
        app=app,
        strategy=strategy,
        config=config,
        clock=clock,
        rng=rng,
        redis=redis,
    )


def _redis_url(config: Config | None, url: str | None) -> str:
    """``url`` (default: the config's Redis URL), marked ``+cluster`` when the config says so."""
    config = config or Config()
    url = url or config.redis_url
    scheme, _, rest = url.partition("://")
    if config.cluster and not scheme.endswith("+cluster"):
        scheme += "+cluster"
    return f"{scheme}://{rest}"


def new_client(config: Config) -> Client:
    """A client for ``config`` (its ``url``, or its ``mode`` and Redis settings)."""
    return connect(config=config)


def client_from_env(environ: Mapping[str, str] | None = None) -> Client:
    """A client configured entirely by environment variables (see `Config.from_env`;
    ``BROKER_URL`` names the backend)."""
    return connect(config=Config.from_env(environ))
