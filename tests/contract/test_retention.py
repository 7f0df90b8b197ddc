"""Group lifetimes: a group nobody runs any more is retired, its backlog dead-lettered."""

from __future__ import annotations

import pytest

import broker
from tests.conftest import FAST, MakeClient
from tests.contract.helpers import wait_for

# Real-time heartbeats never expire here; retention is moved by the manual clock.
KEEP = FAST.replace(
    heartbeat_ttl=3600.0, heartbeat_interval=0.05, cleanup_interval=3600.0, group_retention=60.0
)


async def test_a_group_without_members_for_the_retention_is_retired(
    make_client: MakeClient,
) -> None:
    clock = broker.ManualClock()
    client = make_client("shop", config=KEEP, clock=clock)
    old = client.subscriber(group="old-app")

    @old.handler("orders")
    async def never(n: int) -> None: ...

    await old.start()
    await old.stop()  # a service retired for good: its group stays declared
    billed: list[int] = []
    billing = client.subscriber(group="billing")

    @billing.handler("orders")
    async def bill(n: int) -> None:
        billed.append(n)

    await billing.start()
    await client.publish_many("orders", [1, 2, 3])
    await wait_for(lambda: len(billed) == 3)
    stats = {(g.group, g.topic): g for g in (await client.stats()).groups}
    assert stats[("old-app", "orders")].queued == 3
    assert stats[("old-app", "orders")].unattended
    assert not stats[("billing", "orders")].unattended

    clock.advance(30)
    assert await client.retire_idle_groups() == []  # inside the retention: kept
    clock.advance(31)
    assert await client.retire_idle_groups() == ["old-app"]
    dead = await client.dead_letters("old-app")
    assert sorted(d.envelope.payload for d in dead) == sorted(
        client.codec.encode(n) for n in (1, 2, 3)
    )
    assert {d.error for d in dead} == {"group retired"}
    assert await client.queue.groups("orders") == ["billing"]

    await client.publish("orders", 4)  # reaches the live group only
    await wait_for(lambda: billed == [1, 2, 3, 4])
    stats = {(g.group, g.topic): g for g in (await client.stats()).groups}
    assert stats.get(("old-app", "orders")) is None or stats[("old-app", "orders")].queued == 0
    clock.advance(3600)
    assert "billing" not in await client.retire_idle_groups()  # alive: marked by its client


async def test_undeclare_now_and_not_while_a_member_handles_the_topic(
    make_client: MakeClient,
) -> None:
    client = make_client("shop", config=KEEP)
    sub = client.subscriber(group="reports")

    @sub.handler("daily")
    async def report(n: int) -> None: ...

    await sub.start()
    with pytest.raises(broker.HandlerError, match="reports"):
        await client.undeclare("daily", "reports")
    await sub.stop()
    await client.publish_many("daily", [1, 2])
    assert await client.undeclare("daily", "reports") == 2
    assert {d.error for d in await client.dead_letters("reports")} == {"group undeclared"}
    assert await client.undeclare("daily", "reports") == 0  # idempotent
    assert "reports" not in await client.queue.groups("daily")
