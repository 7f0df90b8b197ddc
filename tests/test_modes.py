"""One prefix serves one mode: a redis and a hybrid client never share it silently."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

import broker
from tests.conftest import FAST, _drop_prefix
from tests.redis_servers import require_redis_server, shared_redis_ok, shared_redis_url


@pytest.fixture(params=["fakeredis", "redis"])
async def shared(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if request.param == "fakeredis":
        import fakeredis

        redis: Any = fakeredis.FakeAsyncRedis()
    else:
        require_redis_server()
        url = shared_redis_url()
        if not shared_redis_ok(url):
            pytest.fail(f"no Redis answers at {url}")
        from broker.backends.redis import connect

        redis = connect(url)
    yield redis
    await redis.aclose()


@pytest.mark.parametrize("first", ["redis", "hybrid"])
async def test_a_client_of_the_other_mode_is_refused_at_start(shared: Any, first: str) -> None:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    config = FAST.replace(prefix=prefix)
    build = {"redis": broker.new_redis_client, "hybrid": broker.new_hybrid_client}
    second = "hybrid" if first == "redis" else "redis"
    try:
        async with build[first]("shop", config=config, redis=shared) as producer:
            await producer.publish("orders", 1)
            async with build[first]("shop", config=config, redis=shared) as same:
                await same.publish("orders", 2)  # the same mode shares the prefix
            async with build[second]("shop", config=config, redis=shared) as other:
                sub = other.subscriber()

                @sub.handler("orders")
                async def never(n: int) -> None: ...

                with pytest.raises(broker.ConfigError) as refused:
                    await sub.start()
                text = str(refused.value)
                assert f"BROKER_MODE={first}" in text
                assert f"a {second} client" in text
                assert "QUEUE_PREFIX" in text
                with pytest.raises(broker.ConfigError):
                    await other.publish("orders", 3)  # refused every time, never stored
            assert (await producer.stats()).groups[0].queued == 2
    finally:
        await _drop_prefix(shared, prefix)
