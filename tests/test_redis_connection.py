"""The Redis connection pool waits for a free connection instead of failing."""

from __future__ import annotations

import asyncio

from broker.backends.redis import connect
from tests.redis_servers import require_redis_server, shared_redis_ok, shared_redis_url


async def test_a_full_pool_makes_callers_wait_and_never_grows_past_its_size() -> None:
    require_redis_server()
    url = shared_redis_url()
    assert shared_redis_ok(url), f"no Redis answers at {url}"
    redis = connect(url, pool_size=3)
    try:
        # each BLPOP holds its connection for 20 ms: 30 of them need to queue for 3 slots
        results = await asyncio.gather(
            *(redis.blpop([f"broker-test-none-{i}"], timeout=0.02) for i in range(30))
        )
        assert results == [None] * 30
        pool = redis.connection_pool
        assert len(pool._available_connections) + len(pool._in_use_connections) <= 3
        assert await redis.ping()
    finally:
        await redis.aclose()
