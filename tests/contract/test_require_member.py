"""`Dispatcher.dispatch(..., require_member=True)`: stored only when a live member takes it."""

from __future__ import annotations

import time
import uuid

import msgspec
import pytest

import broker
from broker.handlers import HandlerFunc
from broker.message import Envelope
from tests.conftest import MakeClient


def envelope(topic: str, n: int) -> Envelope:
    return Envelope(
        id=uuid.uuid4().hex, topic=topic, payload=msgspec.msgpack.encode(n), created_at=time.time()
    )


@pytest.fixture(autouse=True)
def not_hybrid(backend: str) -> None:
    if backend == "hybrid":
        pytest.skip("hybrid stores in Redis first and balances after reading")


def collect(got: list[int]) -> HandlerFunc:
    async def handle(n: int) -> None:
        got.append(n)

    return handle


async def queued(client: broker.Client, topic: str) -> int:
    stats = await client.stats()
    return sum(g.queued + g.in_flight + g.delayed for g in stats.groups if g.topic == topic)


async def test_nothing_is_stored_without_a_live_member(make_client: MakeClient) -> None:
    client = make_client("app")
    other = client.subscriber()
    other.add_handler("elsewhere", collect([]))
    await other.start()
    await client.queue.declare("rpc.price", "app")
    placed = await client.dispatcher.dispatch(
        "app",
        "rpc.price",
        [envelope("rpc.price", 1), envelope("rpc.price", 2)],
        require_member=True,
    )
    assert placed == 0
    assert await queued(client, "rpc.price") == 0
    got: list[int] = []
    sub = client.subscriber()
    sub.add_handler("rpc.price", collect(got))
    await sub.start()  # drains the backlog: there must be nothing in it
    await client.join()
    assert got == []


async def test_a_live_member_gets_it(make_client: MakeClient) -> None:
    client = make_client("app")
    got: list[int] = []
    sub = client.subscriber()
    sub.add_handler("rpc.price", collect(got))
    await sub.start()
    placed = await client.dispatcher.dispatch(
        "app",
        "rpc.price",
        [envelope("rpc.price", 1), envelope("rpc.price", 2)],
        require_member=True,
    )
    assert placed == 2
    await client.join()
    assert sorted(got) == [1, 2]


async def test_without_the_flag_it_waits_in_the_backlog(make_client: MakeClient) -> None:
    client = make_client("app")
    await client.queue.declare("jobs", "app")
    placed = await client.dispatcher.dispatch("app", "jobs", [envelope("jobs", 3)])
    assert placed == 0
    assert await queued(client, "jobs") == 1
    got: list[int] = []
    sub = client.subscriber()
    sub.add_handler("jobs", collect(got))
    await sub.start()
    await client.join()
    assert got == [3]
