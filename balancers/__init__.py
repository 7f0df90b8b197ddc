"""Balancing strategies: which member of a group gets each message."""

from broker.balancers.consistent_hash import ConsistentHash
from broker.balancers.least_connections import LeastConnections
from broker.balancers.round_robin import RoundRobin
from broker.balancers.strategies import STRATEGIES, StrategyName, make_strategy
from broker.balancers.weighted import Weighted

__all__ = [
    "STRATEGIES",
    "ConsistentHash",
    "LeastConnections",
    "RoundRobin",
    "StrategyName",
    "Weighted",
    "make_strategy",
]
