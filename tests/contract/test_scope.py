"""join() and stats() speak of the caller's own groups and topics unless asked for all."""

from __future__ import annotations

import pytest

import broker
from tests.conftest import MakeClient


async def test_join_and_stats_ignore_another_apps_leftovers(
    make_client: MakeClient, backend: str
) -> None:
    if backend == "memory":
        pytest.skip("an in-process backend has one client: nothing of another app to ignore")
    other = make_client("retired-app")
    ghost = other.subscriber()

    @ghost.handler("left.behind")
    async def never(payload: int) -> None: ...

    await ghost.start()
    await ghost.stop()  # its group stays declared on the topic: messages wait for it
    await other.publish("left.behind", 1)

    mine = make_client("shop")
    handled: list[int] = []
    sub = mine.subscriber()

    @sub.handler("orders")
    async def on_order(n: int) -> None:
        handled.append(n)

    await sub.start()
    await mine.publish("orders", 7)
    await mine.join(timeout=10)  # the other app's waiting message does not hold it up
    assert handled == [7]
    with pytest.raises(TimeoutError, match="1 messages still pending"):
        await mine.join(timeout=0.2, all_groups=True)

    own = await mine.stats()
    assert {g.group for g in own.groups} == {"shop"}
    everything = await mine.stats(all_groups=True)
    waiting = [g for g in everything.groups if g.group == "retired-app"]
    assert [(g.topic, g.queued) for g in waiting] == [("left.behind", 1)]


async def test_an_apps_stats_show_its_task_group_before_it_enqueued(
    make_client: MakeClient,
) -> None:
    client = make_client("shop")
    worker = broker.App(client)

    @worker.on_task("resize")
    async def resize(n: int) -> None: ...

    async with worker:
        await worker.enqueue("resize", 1)
        await client.join(timeout=10)
    viewer = broker.App(client)
    stats = await viewer.stats()
    tasks = [g for g in stats.groups if g.group == broker.TASK_GROUP]
    assert [(g.topic, g.processed) for g in tasks] == [("task:resize", 1)]
