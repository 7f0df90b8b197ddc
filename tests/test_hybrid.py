"""Hybrid mode between processes: a dead process's unacknowledged entries are claimed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

import broker
from broker.backends.redis import connect
from broker.backends.redis.keys import Keys
from tests.contract.helpers import wait_for
from tests.redis_servers import require_redis_server, shared_redis_ok, shared_redis_url

SHORT = broker.Config(
    heartbeat_ttl=1.0, heartbeat_interval=0.2, cleanup_interval=0.2, lease=1.0, grace_period=0.0
)


@pytest.fixture
async def url_and_prefix() -> AsyncIterator[tuple[str, str]]:
    require_redis_server()
    url = shared_redis_url()
    if not shared_redis_ok(url):
        pytest.fail(f"no Redis answers at {url}")
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield url, prefix
    client = connect(url)
    async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        await client.delete(key)
    await client.aclose()


async def crash(client: broker.Client) -> None:
    """Stop every task of a client the way a killed process would: nothing handed back."""
    tasks = [t for s in client._subscribers for t in (*s._tasks, s._fetcher) if t is not None]
    tasks += list(client.queue._readers.values())  # type: ignore[attr-defined]
    if client._maintenance is not None:
        tasks.append(client._maintenance)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_entries_of_a_dead_process_are_claimed_by_a_live_one(
    url_and_prefix: tuple[str, str],
) -> None:
    url, prefix = url_and_prefix
    config = SHORT.replace(prefix=prefix)
    stuck = asyncio.Event()
    started: list[str] = []
    dead = broker.new_hybrid_client("shop", url, config=config)
    sub = dead.subscriber(max_jobs=5)

    @sub.handler("orders")
    async def hang(msg: broker.Message[int]) -> None:
        started.append(msg.id)
        await stuck.wait()

    await sub.start()
    ids = await dead.publish_many("orders", list(range(5)))
    await wait_for(lambda: len(started) == 5, timeout=10)
    await crash(dead)

    attempts: dict[str, int] = {}
    async with broker.new_hybrid_client("shop", url, config=config) as live:
        other = live.subscriber()

        @other.handler("orders")
        async def record(msg: broker.Message[int]) -> None:
            attempts[msg.id] = msg.attempt

        loop = asyncio.get_running_loop()
        began = loop.time()
        await other.start()
        await wait_for(lambda: len(attempts) == 5, timeout=15)
        waited = loop.time() - began
    assert sorted(attempts) == sorted(ids)
    assert set(attempts.values()) == {2}, "a claimed entry counts the lost delivery"
    assert waited < config.heartbeat_ttl * 3 + 2, "claimed once idle past the TTL, not later"
    await dead.queue._durable.aclose()  # type: ignore[attr-defined]


async def test_a_closing_process_gives_its_entries_back_at_once(
    url_and_prefix: tuple[str, str],
) -> None:
    url, prefix = url_and_prefix
    config = SHORT.replace(prefix=prefix, heartbeat_ttl=30.0, heartbeat_interval=5.0)
    gate = asyncio.Event()
    first = broker.new_hybrid_client("shop", url, config=config)
    sub = first.subscriber(max_jobs=2)
    seen: list[str] = []

    @sub.handler("orders")
    async def slow(msg: broker.Message[int]) -> None:
        seen.append(msg.id)
        await gate.wait()

    await sub.start()
    ids = await first.publish_many("orders", list(range(10)))
    await wait_for(lambda: len(seen) == 2, timeout=10)
    await first.aclose()  # grace 0: running handlers are cancelled, everything goes back

    done: list[str] = []
    async with broker.new_hybrid_client("shop", url, config=config) as second:
        other = second.subscriber()

        @other.handler("orders")
        async def record(msg: broker.Message[int]) -> None:
            done.append(msg.id)

        await other.start()
        await wait_for(lambda: len(done) == 10, timeout=5)  # far below the 30 s TTL
    assert sorted(done) == sorted(ids)


async def test_a_late_ack_refused_by_redis_counts_as_lost(
    url_and_prefix: tuple[str, str],
) -> None:
    """A paused process's entry was claimed by another; when it resumes it does not take the
    entry back, and its late ack is refused in Redis: its member counts the message as lost."""
    url, prefix = url_and_prefix
    config = SHORT.replace(prefix=prefix, lease=30.0)
    gate, gate_b = asyncio.Event(), asyncio.Event()
    started: list[str] = []
    paused = broker.new_hybrid_client("shop", url, config=config)
    slow = paused.subscriber()

    @slow.handler("orders")
    async def hold(msg: broker.Message[int]) -> None:
        started.append(msg.id)
        await gate.wait()

    await slow.start()
    message_id = await paused.publish("orders", 1)
    await wait_for(lambda: started == [message_id], timeout=10)
    for reader in paused.queue._readers.values():  # type: ignore[attr-defined]
        reader.cancel()  # as if the process were paused: its entries' idle time grows

    done: list[tuple[str, int]] = []
    async with broker.new_hybrid_client("shop", url, config=config) as live:
        other = live.subscriber()

        @other.handler("orders")
        async def record(msg: broker.Message[int]) -> None:
            done.append((msg.id, msg.attempt))
            await gate_b.wait()

        await other.start()
        await wait_for(lambda: done == [(message_id, 2)], timeout=15)
        await paused.queue._keep_alive("shop")  # type: ignore[attr-defined]  # it resumes
        stream = Keys(prefix).group("shop").stream("orders")
        owners = await live.queue.redis.xpending_range(  # type: ignore[attr-defined]
            stream, "broker", "-", "+", 10
        )
        assert [o["consumer"].decode() for o in owners] == [live.queue.process]  # type: ignore[attr-defined]
        gate.set()
        await wait_for(lambda: slow.processed + slow.lost == 1, timeout=10)
        assert (slow.processed, slow.lost) == (0, 1)
        gate_b.set()
        await wait_for(lambda: other.processed == 1, timeout=10)
        stats = {(s.topic, s.group): s for s in await live.queue.stats()}
        assert stats["orders", "shop"].processed == 1, "Redis counted the message once"
    await paused.aclose()


async def test_consumers_of_processes_gone_for_good_are_forgotten(
    url_and_prefix: tuple[str, str],
) -> None:
    url, prefix = url_and_prefix
    config = SHORT.replace(prefix=prefix)
    stream = Keys(prefix).group("shop").stream("orders")
    redis = connect(url)
    handled: list[int] = []
    clients: list[broker.Client] = []
    for _ in range(3):  # three processes that ran and died, one after the other
        gone = broker.new_hybrid_client("shop", url, config=config)
        sub = gone.subscriber()

        @sub.handler("orders")
        async def handle(n: int) -> None:
            handled.append(n)

        await sub.start()
        await gone.publish("orders", len(handled))
        await wait_for(lambda: len(handled) == len(clients) + 1)
        await crash(gone)
        clients.append(gone)
    assert len(await redis.xinfo_consumers(stream, "broker")) == 3

    live = broker.new_hybrid_client("shop", url, config=config)
    live.queue._gone = 1.0  # type: ignore[attr-defined]
    sub = live.subscriber()

    @sub.handler("orders")
    async def handle_live(n: int) -> None:
        handled.append(n)

    async with live:
        await sub.start()

        async def only_the_live_one() -> bool:
            consumers = await redis.xinfo_consumers(stream, "broker")
            return [c["name"].decode() for c in consumers] == [live.queue.process]  # type: ignore[attr-defined]

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while not await only_the_live_one():
            assert loop.time() < deadline, await redis.xinfo_consumers(stream, "broker")
            await asyncio.sleep(0.05)
        await live.publish("orders", 99)
        await wait_for(lambda: 99 in handled)
    for gone in clients:
        await gone.queue.aclose()
    await redis.aclose()
