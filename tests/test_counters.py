"""The queue counters of `stats()` converge to what really waits after faults (Redis backends).

A fetch is an ``XREADGROUP`` and then the lease records; a worker killed between the two, or a
reply lost on the way, leaves entries read with no lease. Expiry or handover takes them back;
afterwards ``queued``, ``in_flight`` and ``delayed`` must come back to zero once all is handled.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

import broker
import broker.message
from broker.backends.redis.keys import CONSUMER_GROUP, Keys
from broker.protocols import MemberInfo, Queue
from tests.conftest import FAST, MakeClient
from tests.contract.helpers import eventually, wait_for
from tests.redis_servers import RedisServer, require_redis_server

TOPIC = "jobs"
N = 40
REDIS_BACKENDS = ["fakeredis", "redis", "cluster"]


@pytest.mark.parametrize("backend", REDIS_BACKENDS, indirect=True)
@pytest.mark.parametrize("beats", [True, False], ids=["expired", "evicted"])
async def test_counters_converge_after_a_fetch_whose_leases_were_never_recorded(
    make_client: MakeClient, beats: bool
) -> None:
    """A member reads its inbox and does not record the leases: the entries are taken back by
    lease expiry (the member lives on and beats) or by handover (it died and is evicted)."""
    config = FAST.replace(lease=0.3, heartbeat_ttl=1.0 if not beats else 30.0)
    client = make_client(config=config, strategy="weighted")
    group = client.config.app_name
    seen: Counter[int] = Counter()
    sub = client.subscriber()

    @sub.handler(TOPIC)
    async def handle(n: int) -> None:
        seen[n] += 1

    await sub.start()
    ghost = MemberInfo(id="ghost", group=group, topics=(TOPIC,))
    await client.registry.register(ghost)
    await client.queue.attach(group, ghost.id)
    for start in range(0, N, 10):  # the first call's reply tells the producer of "ghost"
        await client.publish_many(TOPIC, list(range(start, start + 10)))

    redis = client.queue.redis  # type: ignore[attr-defined]
    inbox = Keys(client.config.prefix).group(group).inbox(ghost.id)
    read = await redis.xreadgroup(CONSUMER_GROUP, ghost.id, {inbox: ">"}, count=N)
    assert read, "some messages went to the member that dies"
    assert read[0][1]
    # weight 0: what expiry takes back goes to the live subscriber, not to "ghost" again
    await client.registry.set_weight(group, ghost.id, 0)
    if beats:  # a member that lives on (its read's reply was lost): its beat reports them
        await client.registry.heartbeat(group, ghost.id, in_flight=0, processed=0, failed=0)

    await wait_for(lambda: len(seen) == N, timeout=20)
    await client.join(timeout=10)
    left = [(s.queued, s.in_flight, s.delayed) for s in await client.queue.stats()]
    assert left == [(0, 0, 0)]
    assert seen == Counter(range(N))


@pytest.mark.parametrize("backend", REDIS_BACKENDS, indirect=True)
async def test_counters_stay_exact_when_an_ack_beats_the_lease_write(
    make_client: MakeClient,
) -> None:
    """Lease records are written a moment after the read; quick handlers ack before that."""
    client = make_client()
    sub = client.subscriber()
    done: list[int] = []

    @sub.handler(TOPIC)
    async def handle(n: int) -> None:
        done.append(n)

    await sub.start()
    for start in range(0, 200, 50):
        await client.publish_many(TOPIC, list(range(start, start + 50)))
    await wait_for(lambda: len(done) == 200, timeout=20)
    await client.join(timeout=10)
    stats = await client.queue.stats()
    assert [(s.queued, s.in_flight, s.processed) for s in stats] == [(0, 0, 200)]


@pytest.mark.parametrize("backend", REDIS_BACKENDS, indirect=True)
async def test_dead_count_goes_down_with_purge_in_the_same_step(make_client: MakeClient) -> None:
    client = make_client(config=FAST.replace(max_attempts=1))
    sub = client.subscriber()

    @sub.handler(TOPIC)
    async def fail(n: int) -> None:
        raise RuntimeError(str(n))

    await sub.start()
    ids = await client.publish_many(TOPIC, [1, 2, 3])
    await client.join(timeout=10)
    assert [s.dead for s in await client.queue.stats()] == [3]
    assert await client.purge([ids[0], ids[1], "no-such-id"]) == 2
    assert await client.purge([ids[0]]) == 0, "taken once"
    assert [s.dead for s in await client.queue.stats()] == [1]


async def test_counters_converge_after_redis_is_killed_and_restarted_with_aof() -> None:
    """redis-server SIGKILLed mid-drain and started again from its AOF: replies lost in the
    kill (fetches, lease writes, acks) leave no phantom queued or in-flight message."""
    require_redis_server()
    config = FAST.replace(prefix="counters", lease=0.5, heartbeat_ttl=30.0)
    with RedisServer(appendonly=True) as server:
        client = broker.new_redis_client("app", server.url, config=config)
        async with client:
            seen: Counter[int] = Counter()
            sub = client.subscriber(max_jobs=20)

            @sub.handler(TOPIC)
            async def handle(n: int) -> None:
                await asyncio.sleep(0.01)  # work that takes time, so the kill finds some
                seen[n] += 1

            await sub.start()
            for start in range(0, 1000, 100):
                await client.publish_many(TOPIC, list(range(start, start + 100)))
            await wait_for(lambda: len(seen) >= 200, timeout=20)
            await asyncio.to_thread(server.kill)
            await asyncio.to_thread(server.start)
            await wait_for(lambda: len(seen) == 1000, timeout=30)

            async def settled() -> bool:
                try:
                    stats = await client.queue.stats()
                except broker.BackendError:
                    return False
                return [(s.queued, s.in_flight, s.delayed) for s in stats] == [(0, 0, 0)]

            await eventually(settled, timeout=20)
            await client.join(timeout=5)
            assert set(seen) == set(range(1000))


async def _member_with_messages(
    make_client: MakeClient, count: int
) -> tuple[broker.Client, str, Queue]:
    """A client whose member ``m`` of the app group is attached, with ``count`` messages
    published to it: (client, group, queue)."""
    client = make_client()
    group, queue = client.config.app_name, client.queue
    await queue.declare(TOPIC, group)
    await client.registry.register(MemberInfo(id="m", group=group, topics=(TOPIC,)))
    await queue.attach(group, "m")
    await client.publish_many(TOPIC, list(range(count)))
    return client, group, queue


@pytest.mark.parametrize("backend", REDIS_BACKENDS, indirect=True)
async def test_acks_settled_together_are_each_fenced_and_counted_once(
    make_client: MakeClient,
) -> None:
    """Acks made together go to Redis in one call: each is fenced on its own, the same
    delivery acked twice in it is acked once, and the counters move by what was acked."""
    client, group, queue = await _member_with_messages(make_client, 30)
    fetched: list[broker.message.Delivery] = []
    for _ in range(30):
        fetched += await queue.fetch(group, "m", 30 - len(fetched), 30.0, 0.05)
        if len(fetched) == 30:
            break
    assert len(fetched) == 30
    await queue._leases_written()  # type: ignore[attr-defined]
    redis = queue.redis  # type: ignore[attr-defined]
    inbox = Keys(client.config.prefix).group(group).inbox("m")
    await redis.xack(inbox, CONSUMER_GROUP, fetched[0].receipt)  # as if another step took it
    results = await asyncio.gather(queue.ack(fetched[1]), *(queue.ack(d) for d in fetched))
    assert results[0] is True
    assert results[1] is False, "an entry no longer pending for the member is not acked"
    assert results[2] is False, "the second ack of one delivery is refused"
    assert all(results[3:])
    stats = await queue.stats()
    assert [(s.queued, s.in_flight, s.processed) for s in stats] == [(0, 1, 29)]


@pytest.mark.parametrize("backend", REDIS_BACKENDS, indirect=True)
async def test_a_delivery_acked_before_its_lease_write_gets_no_lease_record(
    make_client: MakeClient,
) -> None:
    client, group, queue = await _member_with_messages(make_client, 10)
    fetched = await queue.fetch(group, "m", 10, 30.0, 1.0)
    assert fetched
    kept, acked = fetched[0], fetched[1:]
    assert all(await asyncio.gather(*(queue.ack(d) for d in acked)))
    await queue._leases_written()  # type: ignore[attr-defined]
    redis = queue.redis  # type: ignore[attr-defined]
    leases = await redis.zrange(Keys(client.config.prefix).group(group).leases("m"), 0, -1)
    assert [lease.decode() for lease in leases] == [kept.receipt]
    assert not queue._unwritten  # type: ignore[attr-defined]
    stats = await queue.stats()
    assert [(s.in_flight, s.processed) for s in stats] == [(1, len(acked))]
    assert await queue.ack(kept)
    assert [(s.queued, s.in_flight) for s in await queue.stats()] == [(0, 0)]
