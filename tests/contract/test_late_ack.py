"""A late ack whose lease passed to another member is refused and counted as lost."""

from __future__ import annotations

import asyncio

import broker
from broker.subscriber import cancel_task
from tests.conftest import FAST, MakeClient
from tests.contract.helpers import wait_for


async def test_a_refused_late_ack_counts_as_lost_not_processed(make_client: MakeClient) -> None:
    client = make_client(config=FAST.replace(lease=0.5))
    gate = asyncio.Event()
    slow = client.subscriber(member_id="a")
    by_b: list[tuple[str, int]] = []

    @slow.handler("jobs")
    async def hold(msg: broker.Message[int]) -> None:
        await gate.wait()

    await slow.start()
    message_id = await client.publish("jobs", 1)
    await wait_for(lambda: len(slow._held) == 1)
    beat = next(t for t in slow._tasks if t.get_name() == "broker-heartbeat")
    await cancel_task(beat)  # its lease is no longer renewed: it runs out and moves on
    fast = client.subscriber(member_id="b")

    @fast.handler("jobs")
    async def record(msg: broker.Message[int]) -> None:
        by_b.append((msg.id, msg.attempt))

    await fast.start()
    await wait_for(lambda: fast.processed == 1, timeout=15)
    gate.set()
    await wait_for(lambda: slow.processed + slow.lost == 1, timeout=10)
    assert (slow.processed, slow.lost) == (0, 1)
    assert by_b == [(message_id, 2)]
    await client.join(timeout=5)
    stats = {(s.topic, s.group): s for s in await client.queue.stats()}
    assert stats["jobs", "app"].processed == 1
