"""Registry: heartbeats, eviction of silent members, handover of their work, fenced acks."""

from __future__ import annotations

import asyncio
from collections import Counter

import broker
from broker.protocols import MemberInfo
from tests.conftest import FAST, MakeClient
from tests.contract.helpers import eventually, wait_for

# Heartbeats only move on the manual clock when a test says so: long real-time periods.
MANUAL = FAST.replace(
    heartbeat_ttl=30.0, heartbeat_interval=10.0, cleanup_interval=60.0, lease=30.0
)


async def test_dead_member_work_is_redelivered_after_ttl_and_its_ack_is_refused(
    make_client: MakeClient,
) -> None:
    clock = broker.ManualClock()
    client = make_client("shop", config=MANUAL, clock=clock)
    handled: Counter[str] = Counter()
    live = client.subscriber(member_id="b-live")

    @live.handler("orders")
    async def handle(msg: broker.Message[int]) -> None:
        handled[msg.id] += 1

    # A member that will die: registered with an inbox, it leases messages and goes silent.
    ghost = MemberInfo(id="a-ghost", group="shop", topics=("orders",))
    await client.registry.register(ghost)
    await client.queue.attach("shop", "a-ghost")
    await live.start()
    ids = await client.publish_many("orders", list(range(100)))
    held = await client.queue.fetch("shop", "a-ghost", 10, MANUAL.lease, 0.1)
    assert len(held) == 10
    await wait_for(lambda: sum(handled.values()) == 50)  # round robin: half went to the ghost

    clock.advance(MANUAL.heartbeat_ttl / 2)
    await live.heartbeat()
    assert await client.cleanup() == 0, "a member inside its TTL keeps its work"

    clock.advance(MANUAL.heartbeat_ttl / 2 + MANUAL.cleanup_interval)
    await live.heartbeat()
    assert await client.cleanup() == 50
    await client.join()
    assert handled == dict.fromkeys(ids, 1), "each message completed exactly once"
    assert [m.id for m in await client.members()] == ["b-live"]
    assert not await client.queue.ack(held[0]), "the dead member's late ack is fenced"
    assert not await client.queue.retry(held[1], 0.0, "late")
    assert not await client.dispatcher.release(held[2])


async def test_idle_member_stays_alive_and_evicted_member_registers_again(
    make_client: MakeClient,
) -> None:
    clock = broker.ManualClock()
    client = make_client(config=MANUAL, clock=clock)
    sub = client.subscriber(member_id="idle")
    handled: list[int] = []

    @sub.handler("t")
    def record(payload: int) -> None:
        handled.append(payload)

    await sub.start()
    for _ in range(5):
        clock.advance(MANUAL.heartbeat_interval)
        await sub.heartbeat()
        await client.cleanup()
    assert [m.id for m in await client.members()] == ["idle"], "no traffic, still a member"

    clock.advance(MANUAL.heartbeat_ttl + 1)
    await client.cleanup()
    assert await client.members() == []
    await client.publish("t", 1)  # waits in the backlog: the group has no live member
    await sub.heartbeat()
    assert [m.id for m in await client.members()] == ["idle"]
    await client.join()
    assert handled == [1]


async def test_heartbeats_run_in_the_background(make_client: MakeClient) -> None:
    client = make_client()
    sub = client.subscriber()
    sub.add_handler("t", lambda _: None)
    await sub.start()
    info = await sub.info()
    assert info is not None
    first = info.last_seen

    async def beat_seen() -> bool:
        current = await sub.info()
        return current is not None and current.last_seen > first

    await eventually(beat_seen, timeout=5.0)


async def test_member_info_counts_work(make_client: MakeClient) -> None:
    client = make_client("shop")
    sub = client.subscriber(weight=3, member_id="m-1")

    @sub.handler("a")
    async def fail_odd(msg: broker.Message[int]) -> None:
        if msg.payload % 2:
            raise ValueError("odd")

    @sub.handler("b")
    async def ok(msg: broker.Message[int]) -> None:
        return None

    await sub.start()
    await client.publish_many("a", [0, 1, 2], max_attempts=1)
    await client.publish("b", 5)
    await client.join()
    await wait_for(lambda: (sub.processed, sub.failed) == (3, 1))
    await sub.heartbeat()
    info = await sub.info()
    assert info is not None
    assert (info.id, info.group, info.topics, info.weight) == ("m-1", "shop", ("a", "b"), 3)
    assert (info.processed, info.failed, info.in_flight) == (3, 1, 0)
    assert info.joined_at <= info.last_seen
    assert await client.set_weight("m-1", 5)
    assert [m.weight for m in await client.members()] == [5]
    assert not await client.set_weight("nobody", 2)


async def test_expired_lease_of_a_live_member_is_handed_over(make_client: MakeClient) -> None:
    clock = broker.ManualClock()
    config = MANUAL.replace(lease=10.0)
    client = make_client(config=config, clock=clock)
    registry = client.registry
    await registry.register(MemberInfo(id="stuck", group="app", topics=("t",)))
    await client.queue.attach("app", "stuck")
    await client.publish("t", 1)
    (held,) = await client.queue.fetch("app", "stuck", 5, config.lease, 0.1)

    async def beat_and_clean(seconds: float) -> int:
        clock.advance(seconds)
        await registry.heartbeat("app", "stuck", in_flight=1, processed=0, failed=0)
        return await client.cleanup()

    assert await beat_and_clean(6.0) == 0
    assert await client.queue.renew([held], config.lease) == 1
    assert await beat_and_clean(6.0) == 0, "a renewed lease is kept"
    assert await beat_and_clean(5.0) == 1, "an expired lease is taken back"
    (again,) = await client.queue.fetch("app", "stuck", 5, config.lease, 0.1)
    assert again.attempt == 2
    assert not await client.queue.ack(held), "the first delivery's ack is fenced"
    assert await client.queue.ack(again)


async def test_own_member_info_is_live_between_heartbeats(make_client: MakeClient) -> None:
    client = make_client("shop", config=MANUAL)  # no background beat during the test
    sub = client.subscriber(member_id="live", max_jobs=4)
    release = asyncio.Event()
    started: list[int] = []

    @sub.handler("t")
    async def handle(msg: broker.Message[int]) -> None:
        started.append(msg.payload)
        if msg.payload < 0:
            raise ValueError("negative")
        await release.wait()

    await sub.start()
    await client.publish_many("t", [1, 2, 3])
    await wait_for(lambda: len(started) == 3)
    info = await sub.info()
    assert info is not None
    assert (info.id, info.in_flight, info.processed, info.failed) == ("live", 3, 0, 0)

    release.set()
    await client.publish("t", -1, max_attempts=1)
    await client.join()
    await wait_for(lambda: (sub.processed, sub.failed) == (3, 1))
    info = await sub.info()
    assert info is not None
    assert (info.in_flight, info.processed, info.failed) == (0, 3, 1)
    await sub.heartbeat()  # the registry's copy catches up at the member's next heartbeat
    (seen,) = await client.members()
    assert (seen.in_flight, seen.processed, seen.failed) == (0, 3, 1)
    await sub.stop()
    assert await sub.info() is None, "a member that left is not in the registry"
