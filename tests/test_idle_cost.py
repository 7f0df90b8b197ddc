"""What idle members cost Redis, counted from INFO commandstats on a private redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

import broker
from tests.redis_servers import RedisServer, require_redis_server

INTERVAL = 2.0
CONFIG = broker.Config(
    heartbeat_ttl=3 * INTERVAL,
    heartbeat_interval=INTERVAL,
    cleanup_interval=INTERVAL,
    lease=3 * INTERVAL,
    max_jobs=1,
)
_NOT_MEMBERS = ("info", "config|resetstat")


@pytest.fixture
def server() -> Iterator[RedisServer]:
    require_redis_server()
    with RedisServer(extra_args=["--maxclients", "2000"]) as started:
        yield started


@pytest.fixture
async def stats(server: RedisServer) -> AsyncIterator[Redis]:
    redis = Redis.from_url(server.url)
    yield redis
    await redis.aclose()


async def calls_per_beat(
    redis: Redis, members: int, intervals: int, interval: float = INTERVAL
) -> dict[str, float]:
    """Calls by command per member per heartbeat interval, over ``intervals`` intervals."""
    await redis.config_resetstat()
    await asyncio.sleep(intervals * interval)  # the measured span itself, not a synchronisation
    info = await redis.info("commandstats")
    beats = members * intervals
    return {
        name.removeprefix("cmdstat_"): int(value["calls"]) / beats
        for name, value in info.items()
        if name.removeprefix("cmdstat_") not in _NOT_MEMBERS
    }


async def test_an_idle_member_costs_its_beat_and_one_blocking_read(
    server: RedisServer, stats: Redis
) -> None:
    members = 500
    config = CONFIG.replace(pool_size=members + 50)
    async with broker.new_redis_client("idle", server.url, config=config) as client:
        for index in range(members):
            sub = client.subscriber(member_id=f"m{index:05d}")

            async def handle(n: int) -> None: ...

            sub.add_handler("idle", handle)
            await sub.start()
        await asyncio.sleep(INTERVAL)  # every loop settles into its idle rhythm
        per = await calls_per_beat(stats, members, 3)
        print({k: round(v, 3) for k, v in sorted(per.items(), key=lambda kv: -kv[1])})
        assert len(await client.members()) == members  # nobody falsely expired
        assert per.get("evalsha", 0.0) <= 1.2, per  # the beat
        assert per.get("xreadgroup", 0.0) <= 1.3, per  # one blocking read
        for cleanup_per_member in ("hgetall", "get", "xrange", "hget"):
            assert per.get(cleanup_per_member, 0.0) <= 0.02, per


async def stop_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel every task, again while any is left (a command cut mid-reply may absorb one)."""
    for _ in range(100):
        pending = [t for t in tasks if not t.done()]
        if not pending:
            return
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=0.2)


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_ten_thousand_members_beat_with_no_false_expiry(
    server: RedisServer, stats: Redis
) -> None:
    members, interval = 10_000, 5.0  # one process beats for all: 2,000 beats/s
    config = CONFIG.replace(
        heartbeat_ttl=3 * interval, heartbeat_interval=interval, cleanup_interval=interval
    )
    async with broker.new_redis_client("many", server.url, config=config) as client:
        registry = client.registry
        began = time.monotonic()
        ids = [f"m{index:05d}" for index in range(members)]

        async def join(member: str) -> None:
            await registry.register(broker.MemberInfo(id=member, group="many", topics=("t",)))
            await client.queue.attach("many", member)  # its inbox, as a running member has

        for start in range(0, members, 100):
            await asyncio.gather(*(join(m) for m in ids[start : start + 100]))
        print("registered", time.monotonic() - began)
        await registry.heartbeat("many", ids[0], in_flight=0, processed=0, failed=0)

        async def beat(member: str, offset: float) -> None:
            await asyncio.sleep(offset)  # spread the beats over the interval, as members do
            while True:
                await registry.heartbeat("many", member, in_flight=0, processed=0, failed=0)
                await asyncio.sleep(interval)

        async def clean() -> None:
            while True:
                await client.cleanup()
                await asyncio.sleep(interval)

        tasks = [asyncio.create_task(beat(m, interval * i / members)) for i, m in enumerate(ids)]
        tasks.append(asyncio.create_task(clean()))
        try:
            await asyncio.sleep(interval)  # every member beats once before the count
            per = await calls_per_beat(stats, members, 3, interval)
            info = await stats.info("commandstats")
            alive = len(await registry.members("many"))
            print("measured", time.monotonic() - began)
        finally:
            await stop_all(tasks)
        print({k: round(v, 4) for k, v in sorted(per.items(), key=lambda kv: -kv[1])})
        print("evalsha usec per call", info["cmdstat_evalsha"]["usec_per_call"])
        assert alive == members
        assert 0.8 <= per.get("evalsha", 0.0) <= 1.1, per  # every member beat, once
        assert sum(per.values()) <= 7.0, per  # the beat script's own commands, and no scan
