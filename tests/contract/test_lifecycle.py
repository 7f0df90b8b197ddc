"""Concurrency limits, sync handlers, graceful stop."""

from __future__ import annotations

import asyncio
import threading

import pytest

import broker
from tests.conftest import MakeClient
from tests.contract.helpers import wait_for


async def test_max_jobs_is_never_exceeded_and_nothing_is_fetched_beyond_it(
    make_client: MakeClient,
) -> None:
    client = make_client()
    sub = client.subscriber(max_jobs=4)
    running = 0
    peak = 0
    peak_leased = 0

    @sub.handler("work")
    async def handle(msg: broker.Message[int]) -> None:
        nonlocal running, peak, peak_leased
        running += 1
        peak = max(peak, running)
        leased = sum(g.in_flight for g in await client.queue.stats())
        peak_leased = max(peak_leased, leased)
        await asyncio.sleep(0.001)  # the work itself
        running -= 1

    await sub.start()
    await client.publish_many("work", list(range(200)))
    await client.join()
    assert peak == 4
    assert peak_leased <= 4


async def test_sync_handler_runs_in_a_thread_without_blocking_the_loop(
    make_client: MakeClient,
) -> None:
    client = make_client()
    loop = asyncio.get_running_loop()
    started = asyncio.Event()
    gate = threading.Event()
    outcome: list[tuple[bool, bool]] = []
    sub = client.subscriber()

    @sub.handler("blocking")
    def handle(payload: int) -> None:
        loop.call_soon_threadsafe(started.set)
        released = gate.wait(timeout=5.0)  # only the event loop can open the gate
        outcome.append((released, threading.current_thread() is threading.main_thread()))

    await sub.start()
    await client.publish("blocking", 1)
    await started.wait()
    gate.set()
    await client.join()
    assert outcome == [(True, False)]


async def test_stop_finishes_in_flight_and_hands_the_rest_over_at_once(
    make_client: MakeClient,
) -> None:
    client = make_client()
    finish_first = asyncio.Event()
    never = asyncio.Event()
    by_a: list[int] = []
    by_b: list[tuple[int, int]] = []
    a = client.subscriber(member_id="a", max_jobs=2)

    @a.handler("jobs")
    async def slow(msg: broker.Message[int]) -> None:
        await (finish_first if msg.payload == 1 else never).wait()
        by_a.append(msg.payload)

    await a.start()
    await client.publish_many("jobs", [1, 2, 3])
    await wait_for(lambda: a.processed == 0 and len(a._held) == 2)
    b = client.subscriber(member_id="b")

    @b.handler("jobs")
    async def fast(msg: broker.Message[int]) -> None:
        by_b.append((msg.payload, msg.attempt))

    await b.start()
    stopping = asyncio.create_task(a.stop(grace=1.0))
    await wait_for(lambda: (3, 1) in by_b, timeout=1.0)  # the unstarted one moved at once
    finish_first.set()
    await stopping
    await client.join(timeout=1.0)  # far below the 3 s heartbeat TTL
    assert by_a == [1]
    assert sorted(by_b) == [(2, 1), (3, 1)], "released work is redelivered, attempt not burnt"
    assert [m.id for m in await client.members()] == ["b"]


async def test_stopped_subscriber_cannot_start_again(make_client: MakeClient) -> None:
    client = make_client()
    sub = client.subscriber()
    sub.add_handler("t", lambda _: None)
    await sub.start()
    await sub.stop()
    with pytest.raises(broker.ClientClosed):
        await sub.start()


async def test_closed_client_refuses_work(make_client: MakeClient) -> None:
    client = make_client()
    sub = client.subscriber()
    sub.add_handler("t", lambda _: None)
    await sub.start()
    await client.aclose()
    assert not sub.running
    with pytest.raises(broker.ClientClosed):
        await client.publish("t", 1)


async def test_health_and_stats_are_typed(make_client: MakeClient) -> None:
    client = make_client("shop")
    sub = client.subscriber()
    sub.add_handler("t", lambda _: None)
    await sub.start()
    await client.publish_many("t", [1, 2, 3])
    await client.join()
    health = await client.health()
    assert health.ok
    assert len(health.components) == 2
    assert all(c.ok and c.latency_ms >= 0 for c in health.components)
    stats = await client.stats()
    (group,) = stats.groups
    assert (group.topic, group.group, group.processed, group.queued) == ("t", "shop", 3, 0)
    assert [m.id for m in stats.members] == [sub.id]
