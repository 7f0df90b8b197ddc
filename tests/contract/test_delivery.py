"""Single delivery: every message handled once per group, failures retried then dead-lettered."""

from __future__ import annotations

import dataclasses
from collections import Counter

import msgspec
import pytest

import broker
from broker.handlers import HandlerFunc
from tests.conftest import FAST, MakeClient

STRATEGIES = ["round_robin", "consistent_hash", "weighted", "least_conn"]


class Order(msgspec.Struct):
    id: int
    item: str


@dataclasses.dataclass
class Point:
    x: int
    y: int


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_eight_members_twenty_thousand_messages_once_each(
    make_client: MakeClient, strategy: str, backend: str
) -> None:
    client = make_client("shop", strategy=strategy)
    seen: list[str] = []
    per_member: Counter[str] = Counter()
    subscribers = []
    for index in range(8):
        sub = client.subscriber(weight=index % 3 + 1, max_jobs=8)

        def make_handler(member: str) -> HandlerFunc:
            async def handle(msg: broker.Message[int]) -> None:
                seen.append(msg.id)
                per_member[member] += 1

            return handle

        sub.add_handler("orders.created", make_handler(sub.id))
        subscribers.append(sub)
        await sub.start()
    total = 4_000 if backend == "fakeredis" else 20_000  # fakeredis is a slow Python fake
    ids: list[str] = []
    for start in range(0, total, 1000):
        ids += await client.publish_many(
            "orders.created",
            list(range(start, start + 1000)),
            keys=[f"customer-{i % 97}" for i in range(start, start + 1000)],
        )
    await client.join()
    assert len(seen) == total
    assert len(set(seen)) == total
    assert set(seen) == set(ids)
    assert sum(per_member.values()) == total
    assert len(per_member) == 8, "every member received work"


async def test_every_group_gets_every_message_once(make_client: MakeClient) -> None:
    client = make_client("shop")
    received: dict[str, list[str]] = {"billing": [], "shipping": []}
    for group in received:
        for _ in range(3):
            sub = client.subscriber(group=group)

            def make_handler(name: str) -> HandlerFunc:
                async def handle(msg: broker.Message[dict[str, int]]) -> None:
                    received[name].append(msg.id)

                return handle

            sub.add_handler("orders.created", make_handler(group))
            await sub.start()
    ids = [await client.publish("orders.created", {"n": i}) for i in range(500)]
    await client.join()
    for got in received.values():
        assert sorted(got) == sorted(ids)


async def test_typed_payloads_are_decoded_from_the_annotation(make_client: MakeClient) -> None:
    client = make_client()
    orders: list[Order] = []
    points: list[Point] = []
    messages: list[broker.Message[Order]] = []
    sub = client.subscriber()

    @sub.handler("orders")
    async def on_order(msg: broker.Message[Order]) -> None:
        messages.append(msg)
        orders.append(msg.payload)

    @sub.handler("points")
    def on_point(point: Point) -> None:
        points.append(point)

    await sub.start()
    order_id = await client.publish("orders", Order(id=7, item="book"), headers={"h": "v"})
    await client.publish("points", Point(1, 2))
    await client.join()
    assert orders == [Order(id=7, item="book")]
    assert points == [Point(1, 2)]
    assert messages[0].id == order_id
    assert messages[0].attempt == 1
    assert messages[0].headers == {"h": "v"}


async def test_json_content_type_round_trips(make_client: MakeClient) -> None:
    client = make_client(config=FAST.replace(content_type="json"))
    got: list[Order] = []
    sub = client.subscriber()

    @sub.handler("orders")
    def on_order(order: Order) -> None:
        got.append(order)

    await sub.start()
    await client.publish("orders", {"id": 1, "item": "pen"})
    await client.join()
    assert got == [Order(id=1, item="pen")]


async def test_failing_handler_is_retried_then_dead_lettered(make_client: MakeClient) -> None:
    client = make_client(config=FAST.replace(max_attempts=4))
    attempts: list[int] = []
    sub = client.subscriber()

    @sub.handler("jobs")
    async def always_fails(msg: broker.Message[str]) -> None:
        attempts.append(msg.attempt)
        raise RuntimeError(f"boom {msg.attempt}")

    await sub.start()
    message_id = await client.publish("jobs", "x")
    await client.join()
    assert attempts == [1, 2, 3, 4]
    dead = await client.dead_letters()
    assert [d.envelope.id for d in dead] == [message_id]
    assert dead[0].error == "RuntimeError: boom 4"
    assert dead[0].envelope.attempt == 4
    stats = {(g.topic, g.group): g for g in (await client.stats()).groups}
    assert stats["jobs", "app"].dead == 1
    assert stats["jobs", "app"].failed == 4
    assert stats["jobs", "app"].processed == 0


async def test_handler_succeeding_on_a_retry_is_acked_once(make_client: MakeClient) -> None:
    client = make_client()
    calls: Counter[str] = Counter()
    sub = client.subscriber()

    @sub.handler("jobs")
    async def flaky(msg: broker.Message[int]) -> None:
        calls[msg.id] += 1
        if msg.attempt < 2:
            raise ValueError("first try fails")

    await sub.start()
    ids = await client.publish_many("jobs", list(range(50)))
    await client.join()
    assert calls == dict.fromkeys(ids, 2)
    assert await client.dead_letters() == []


async def test_dead_letters_replay_and_purge(make_client: MakeClient) -> None:
    client = make_client(config=FAST.replace(max_attempts=1))
    fail = True
    handled: list[str] = []
    sub = client.subscriber()

    @sub.handler("jobs")
    async def handle(msg: broker.Message[int]) -> None:
        if fail:
            raise RuntimeError("down")
        handled.append(msg.id)

    await sub.start()
    first, second = await client.publish_many("jobs", [1, 2])
    await client.join()
    assert {d.envelope.id for d in await client.dead_letters()} == {first, second}
    fail = False
    assert await client.replay([first]) == 1
    await client.join()
    assert handled == [first]
    assert await client.purge([second]) == 1
    assert await client.dead_letters() == []
    assert await client.replay(["no-such-id"]) == 0


async def test_messages_published_before_any_subscriber_wait_for_one(
    make_client: MakeClient,
) -> None:
    client = make_client("shop")
    ids = await client.publish_many("early", list(range(20)))
    got: list[str] = []
    sub = client.subscriber()

    @sub.handler("early")
    async def handle(msg: broker.Message[int]) -> None:
        got.append(msg.id)

    await sub.start()
    await client.join()
    assert sorted(got) == sorted(ids)


async def test_a_group_started_by_another_process_gets_every_later_message(
    make_client: MakeClient, backend: str
) -> None:
    config = FAST.replace(groups_cache=0.5)  # long enough that a stale list would show
    producer = make_client("app", config=config)
    first = producer.subscriber(group="first")
    seen: dict[str, list[int]] = {"first": [], "second": []}

    async def on_first(n: int) -> None:
        seen["first"].append(n)

    async def on_second(n: int) -> None:
        seen["second"].append(n)

    first.add_handler("orders", on_first)
    await first.start()
    await producer.publish("orders", 0)  # the producer now holds the list [first]
    # another process (in memory: the same one, the backend does not leave it)
    other = producer if backend == "memory" else make_client("app", config=config)
    second = other.subscriber(group="second")
    second.add_handler("orders", on_second)
    await second.start()  # from here on, every publish must reach "second" too
    await producer.publish("orders", 1)
    await producer.join()
    assert seen == {"first": [0, 1], "second": [1]}
