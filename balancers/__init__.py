"""Balancing strategies: which member of a group gets each message."""

from balancers.consistent_hash import ConsistentHash
from balancers.least_connections import LeastConnections
from balancers.round_robin import RoundRobin
from balancers.strategies import STRATEGIES, StrategyName, make_strategy
from balancers.weighted import Weighted

__all__ = [
    "STRATEGIES",
    "ConsistentHash",
    "LeastConnections",
    "RoundRobin",
    "StrategyName",
    "Weighted",
    "make_strategy",
]
