"""Shared fixtures: a client factory parametrised over every backend.

Backends: ``memory``; ``fakeredis``; ``redis`` (the Redis at ``TEST_REDIS_URL``, default
127.0.0.1:6379, each test under its own key prefix, removed after); ``cluster`` (a 3-master
Redis Cluster this session starts on free loopback ports); ``hybrid`` (queue in that Redis,
balancing in the process). Without a redis-server the Redis
backends skip locally and fail under CI (``CI=true``).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any, Protocol

import pytest

import broker
from broker.protocols import Clock, StrategyFactory
from tests.redis_servers import (
    RedisCluster,
    require_redis_server,
    shared_redis_ok,
    shared_redis_url,
)

BACKENDS = ["memory", "fakeredis", "redis", "cluster", "hybrid"]


class MakeClient(Protocol):
    def __call__(
        self,
        app: str = "app",
        *,
        strategy: str | StrategyFactory = "round_robin",
        config: broker.Config | None = None,
        clock: Clock | None = None,
    ) -> broker.Client: ...


# Timings short enough for tests that run on the real clock.
FAST = broker.Config(
    heartbeat_ttl=3.0,
    heartbeat_interval=0.05,
    cleanup_interval=0.1,
    lease=2.0,
    retry_backoff=0.001,
    retry_backoff_max=0.01,
    grace_period=5.0,
    groups_cache=0.02,
)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    require_redis_server()
    with RedisCluster() as cluster:
        yield cluster


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _drop_prefix(client: Any, prefix: str) -> None:
    nodes = client.get_primaries() if hasattr(client, "get_primaries") else [None]
    for node in nodes:
        kwargs = {"target_nodes": node} if node is not None else {}
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000, **kwargs):
            await client.delete(key)


@pytest.fixture
async def make_client(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[MakeClient]:
    """Build clients on the backend under test; all are closed (and their keys removed) after."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    async with AsyncExitStack() as stack:
        shared: Any = None
        if backend == "fakeredis":
            import fakeredis

            shared = fakeredis.FakeAsyncRedis()
            stack.push_async_callback(shared.aclose)
        elif backend in ("redis", "hybrid"):
            require_redis_server()
            url = shared_redis_url()
            if not shared_redis_ok(url):
                pytest.fail(f"no Redis answers at {url}")
            from broker.backends.redis import connect

            shared = connect(url)
            stack.push_async_callback(shared.aclose)
            stack.push_async_callback(_drop_prefix, shared, prefix)
        elif backend == "cluster":
            cluster: RedisCluster = request.getfixturevalue("redis_cluster")
            from broker.backends.redis import connect

            shared = connect(cluster.url, cluster=True)
            stack.push_async_callback(shared.aclose)
            stack.push_async_callback(_drop_prefix, shared, prefix)

        def make(
            app: str = "app",
            *,
            strategy: str | StrategyFactory = "round_robin",
            config: broker.Config | None = None,
            clock: Clock | None = None,
        ) -> broker.Client:
            settings = (config or FAST).replace(prefix=prefix)
            if backend == "memory":
                client = broker.new_memory_client(
                    app, strategy=strategy, config=settings, clock=clock, rng=random.Random(7)
                )
            else:
                build = broker.new_hybrid_client if backend == "hybrid" else broker.new_redis_client
                client = build(
                    app,
                    strategy=strategy,
                    config=settings,
                    clock=clock,
                    rng=random.Random(7),
                    redis=shared,
                )
            stack.push_async_callback(client.aclose)
            return client

        yield make
