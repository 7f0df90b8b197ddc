"""The connector of ``hybrid+redis://`` (also ``hybrid+rediss://``, ``hybrid+unix://`` and the
``+cluster`` forms): the durable queue in Redis, balancing in this process."""

from __future__ import annotations

from broker.backend import Backend, BackendRequest
from broker.backends.hybrid.dispatch import HybridDispatcher
from broker.backends.hybrid.queue import HybridQueue
from broker.backends.memory import MemoryQueue
from broker.backends.redis import redis_backend, redis_parts
from broker.balancers.dispatch import LocalDispatcher
from broker.balancers.local import LocalBalancer
from broker.balancers.registry import MemoryRegistry
from broker.names import process_id

__all__ = ["connect_hybrid"]


def connect_hybrid(request: BackendRequest) -> Backend:
    """Redis gives each message to one process; this process's balancer picks one of its own
    members by the strategy."""
    parts = redis_parts(request)
    ttl = request.config.heartbeat_ttl
    local = MemoryQueue(request.clock)
    registry = MemoryRegistry(request.clock, ttl)
    balancer = LocalBalancer(registry, request.strategy, request.rng)

    def topics_of(group: str) -> set[str]:
        return {t for member in registry.live(group).values() for t in member.topics}

    queue = HybridQueue(
        parts.durable_queue(request),
        parts.keys,
        parts.scripts,
        local,
        process_id(),
        topics_of,
        ttl=ttl,
    )
    dispatcher = HybridDispatcher(queue, LocalDispatcher(local, balancer), parts.keys, ttl=ttl)
    return redis_backend(parts, queue, registry, dispatcher, "hybrid")
