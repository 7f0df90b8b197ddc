"""The built-in strategies by name."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from broker.balancers.consistent_hash import ConsistentHash
from broker.balancers.least_connections import LeastConnections
from broker.balancers.round_robin import RoundRobin
from broker.balancers.weighted import Weighted

if TYPE_CHECKING:
    from broker.protocols import Strategy

__all__ = ["STRATEGIES", "StrategyName", "make_strategy"]

StrategyName = Literal["round_robin", "consistent_hash", "weighted", "least_conn"]

STRATEGIES: dict[str, Callable[[random.Random | None], Strategy]] = {
    "round_robin": RoundRobin,
    "consistent_hash": ConsistentHash,
    "weighted": Weighted,
    "least_conn": LeastConnections,
    "least_connections": LeastConnections,
}


def make_strategy(name: str, rng: random.Random | None = None) -> Strategy:
    """A new instance of the strategy called ``name``; `ConfigError` if there is none."""
    factory = STRATEGIES.get(name)
    if factory is None:
        from broker.errors import ConfigError

        raise ConfigError(
            "BALANCE_STRATEGY", name, "one of round_robin, consistent_hash, weighted, least_conn"
        )
    return factory(rng)
