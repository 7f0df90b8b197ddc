"""Strategies as users see them: through publish and subscribers."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

import broker
from broker.handlers import HandlerFunc
from tests.conftest import MakeClient


async def start_members(
    client: broker.Client,
    counts: Counter[str],
    weights: list[int],
    topic: str = "t",
) -> list[broker.Subscriber]:
    subs = []
    for index, weight in enumerate(weights):
        sub = client.subscriber(member_id=f"m{index}", weight=weight)

        def make(member: str) -> HandlerFunc:
            async def handle(msg: broker.Message[int]) -> None:
                counts[member] += 1

            return handle

        sub.add_handler(topic, make(sub.id))
        await sub.start()
        subs.append(sub)
    return subs


async def test_round_robin_spreads_evenly(make_client: MakeClient) -> None:
    client = make_client(strategy="round_robin")
    counts: Counter[str] = Counter()
    await start_members(client, counts, [1, 1, 1, 1, 1, 1, 1])
    for i in range(1000):
        await client.publish("t", i)
    await client.join()
    assert sum(counts.values()) == 1000
    assert max(counts.values()) - min(counts.values()) <= 1


async def test_weighted_shares_follow_weights(make_client: MakeClient) -> None:
    client = make_client(strategy="weighted")
    counts: Counter[str] = Counter()
    subs = await start_members(client, counts, [5, 1, 1])
    await client.publish_many("t", list(range(7000)))
    await client.join()
    assert counts == {"m0": 5000, "m1": 1000, "m2": 1000}
    await subs[1].set_weight(5)
    counts.clear()
    await client.publish_many("t", list(range(1100)))
    await client.join()
    assert counts == {"m0": 500, "m1": 500, "m2": 100}


async def test_consistent_hash_keeps_a_key_on_one_member(make_client: MakeClient) -> None:
    client = make_client(strategy="consistent_hash")
    owners: dict[str, set[str]] = defaultdict(set)
    for index in range(5):
        sub = client.subscriber(member_id=f"m{index}")

        def make(member: str) -> HandlerFunc:
            async def handle(msg: broker.Message[int]) -> None:
                assert msg.key is not None
                owners[msg.key].add(member)

            return handle

        sub.add_handler("t", make(sub.id))
        await sub.start()
    keys = [f"customer-{i % 200}" for i in range(4000)]
    await client.publish_many("t", list(range(4000)), keys=keys)
    await client.join()
    assert len(owners) == 200
    assert all(len(members) == 1 for members in owners.values())
    spread = Counter(next(iter(m)) for m in owners.values())
    assert len(spread) == 5


async def test_least_connections_starves_a_slow_member(make_client: MakeClient) -> None:
    client = make_client(strategy="least_conn")
    counts: Counter[str] = Counter()
    # The producer keeps both members saturated: at most 8 messages in flight, more than the
    # two members run at once, so each one's outstanding count reflects its speed.
    window = asyncio.Semaphore(8)
    for member, seconds in (("fast", 0.01), ("slow", 0.1)):
        sub = client.subscriber(member_id=member, max_jobs=2)

        def make(name: str, pause: float) -> HandlerFunc:
            async def handle(msg: broker.Message[int]) -> None:
                await asyncio.sleep(pause)  # the work: the slow member is 10x slower
                counts[name] += 1
                window.release()

            return handle

        sub.add_handler("t", make(member, seconds))
        await sub.start()
    for i in range(600):
        await window.acquire()
        await client.publish("t", i)
    await client.join()
    assert sum(counts.values()) == 600
    assert counts["slow"] <= counts["fast"] / 5
