"""Constructors: a client for each backend, from code or from the environment.

Implementations are imported when a constructor runs, so ``import broker`` stays light and
the backends and balancers may import ``broker.message`` and ``broker.protocols`` freely.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from broker.client import Client
from broker.config import Config
from broker.errors import ConfigError
from broker.protocols import Clock, StrategyFactory

__all__ = ["client_from_env", "new_client", "new_memory_client"]


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
    from backends.clock import SystemClock
    from backends.memory import MemoryQueue
    from balancers.dispatch import LocalDispatcher
    from balancers.local import LocalBalancer
    from balancers.registry import MemoryRegistry

    config = config or Config()
    if app is not None:
        config = config.replace(app_name=app)
    if isinstance(strategy, str):
        config = config.replace(strategy=strategy)
    clock = clock or SystemClock()
    registry = MemoryRegistry(clock, config.heartbeat_ttl)
    balancer = LocalBalancer(registry, strategy or config.strategy, rng)
    queue = MemoryQueue(clock)
    dispatcher = LocalDispatcher(queue, balancer)
    return Client(config, queue, registry, dispatcher, clock=clock, rng=rng)


def new_client(config: Config) -> Client:
    """A client for ``config.mode``."""
    if config.mode == "memory":
        return new_memory_client(config=config)
    raise ConfigError(
        "BROKER_MODE", config.mode, "memory (the redis and hybrid backends are not in this build)"
    )


def client_from_env(environ: Mapping[str, str] | None = None) -> Client:
    """A client configured entirely by environment variables (see `Config.from_env`)."""
    return new_client(Config.from_env(environ))
