"""RPC on a real Redis leaves nothing behind: keys, stream entries and channels return to
their baseline after 10,000 requests."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import broker
from broker.backends.redis import connect
from tests.conftest import FAST, _drop_prefix
from tests.contract.helpers import eventually
from tests.redis_servers import require_redis_server, shared_redis_ok, shared_redis_url

REQUESTS = 10_000


async def footprint(redis: Any, prefix: str) -> tuple[dict[str, int], int]:
    """Every key under ``prefix`` with its size (entries, members or non-zero fields), and how many
    Pub/Sub channels of the prefix have listeners."""
    sizes: dict[str, int] = {}
    async for raw in redis.scan_iter(match=f"{prefix}:*", count=1000):
        key = raw.decode()
        kind = (await redis.type(key)).decode()
        if kind == "stream":
            sizes[key] = await redis.xlen(key)
        elif kind == "hash" and key.endswith((":stats", ":load")):  # a zero counter: no growth
            sizes[key] = sum(1 for v in (await redis.hgetall(key)).values() if v != b"0")
        elif kind == "hash":
            sizes[key] = await redis.hlen(key)
        elif kind in ("zset", "set"):
            size = {"zset": redis.zcard, "set": redis.scard}[kind]
            sizes[key] = await size(key)
        else:
            sizes[key] = 1
    channels = await redis.pubsub_channels(f"{prefix}:*")
    return sizes, len(channels)


async def test_rpc_leaves_no_keys_entries_or_channels_behind() -> None:
    require_redis_server()
    url = shared_redis_url()
    assert shared_redis_ok(url), f"no Redis answers at {url}"
    prefix = f"test-rpc-{uuid.uuid4().hex[:12]}"
    redis = connect(url)
    config = FAST.replace(prefix=prefix)
    worker_client = broker.new_redis_client("rpc", url, config=config)
    caller_client = broker.new_redis_client("rpc", url, config=config)
    try:
        worker = broker.App(worker_client, max_jobs=50)

        @worker.on_request("DOUBLE")
        async def double(n: int) -> int:
            return 2 * n

        await worker.start()
        caller = broker.App(caller_client)
        assert await caller.request("DOUBLE", 1, timeout=10) == 2
        baseline = await footprint(redis, prefix)

        semaphore = asyncio.Semaphore(100)

        async def call(n: int) -> None:
            async with semaphore:
                assert await caller.request("DOUBLE", n, timeout=30) == 2 * n

        await asyncio.gather(*(call(n) for n in range(REQUESTS)))
        assert caller.requests_pending == 0

        async def back_to_baseline() -> bool:
            return await footprint(redis, prefix) == baseline

        try:
            await eventually(back_to_baseline, timeout=20)
        except TimeoutError:
            now = await footprint(redis, prefix)
            diff = {
                k: (baseline[0].get(k), now[0].get(k))
                for k in baseline[0].keys() | now[0].keys()
                if baseline[0].get(k) != now[0].get(k)
            }
            channels = f"channels {baseline[1]}, {now[1]}"
            raise AssertionError(f"not back to baseline: {diff}, {channels}") from None
        await worker.stop()
    finally:
        await caller_client.aclose()
        await worker_client.aclose()
        await _drop_prefix(redis, prefix)
        await redis.aclose()
