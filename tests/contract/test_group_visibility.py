"""A group started anywhere is seen by every producer when `start()` returns, with no wait."""

from __future__ import annotations

import asyncio
import time

import pytest

import broker
from tests.conftest import FAST, MakeClient
from tests.contract.helpers import wait_for

# Far longer than any test: only the groups token can make a producer see a new group.
LONG_CACHE = FAST.replace(groups_cache=60.0)


@pytest.fixture(autouse=True)
def across_processes(backend: str) -> None:
    if backend == "memory":
        pytest.skip("one process: the memory backend has no producer cache")


async def test_a_warm_producer_reaches_a_group_started_by_another_client(
    make_client: MakeClient,
) -> None:
    producer = make_client("app", config=LONG_CACHE)
    seen: dict[str, list[int]] = {"first": [], "second": [], "third": []}

    def handler(name: str):  # type: ignore[no-untyped-def]
        async def handle(n: int) -> None:
            seen[name].append(n)

        return handle

    first = producer.subscriber(group="first")
    first.add_handler("orders", handler("first"))
    await first.start()
    await producer.publish("orders", 0)  # the producer now holds the list [first]
    await producer.publish("orders", 1)
    other = make_client("app", config=LONG_CACHE)
    second = other.subscriber(group="second")
    second.add_handler("orders", handler("second"))
    started = time.monotonic()
    await second.start()
    took = time.monotonic() - started
    await producer.publish("orders", 2)  # published once start() returned: reaches "second"
    third = other.subscriber(group="third")
    third.add_handler("orders", handler("third"))
    await third.start()
    await producer.publish_many("orders", [3, 4])
    await producer.join()
    await other.join()
    assert seen == {"first": [0, 1, 2, 3, 4], "second": [2, 3, 4], "third": [3, 4]}
    assert took < 10.0  # no wait for the producers' cache (60 s here)


async def test_the_first_group_of_a_topic_is_seen_by_a_producer_that_found_none(
    make_client: MakeClient,
) -> None:
    producer = make_client("producer", config=LONG_CACHE)
    assert await producer.queue.groups("fresh") == []  # read, found empty
    worker = make_client("worker", config=LONG_CACHE)
    got: list[int] = []
    sub = worker.subscriber()

    async def handle(n: int) -> None:
        got.append(n)

    sub.add_handler("fresh", handle)
    await sub.start()
    await producer.publish("fresh", 7)
    await worker.join()
    assert got == [7]
    assert await producer.queue.groups("fresh") == ["worker"]  # not its own app group


async def test_groups_started_concurrently_are_both_seen(make_client: MakeClient) -> None:
    producer = make_client("app", config=LONG_CACHE)
    got: dict[str, list[int]] = {"a": [], "b": [], "c": []}

    def subscribe(client_name: str, group: str) -> broker.Subscriber:
        sub = make_client(client_name, config=LONG_CACHE).subscriber(group=group)

        async def handle(n: int) -> None:
            got[group].append(n)

        sub.add_handler("shared", handle)
        return sub

    first = subscribe("w0", "a")
    await first.start()
    await producer.publish("shared", 0)  # warm: the producer knows [a]
    await asyncio.gather(subscribe("w1", "b").start(), subscribe("w2", "c").start())
    await producer.publish("shared", 1)
    await wait_for(lambda: got == {"a": [0, 1], "b": [1], "c": [1]}, timeout=10.0)
