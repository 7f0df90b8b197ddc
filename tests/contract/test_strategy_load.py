"""A user strategy that reads load sees each member's real outstanding count."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import ClassVar

from broker.message import Envelope
from broker.protocols import Candidate
from tests.conftest import MakeClient
from tests.contract.helpers import eventually, wait_for


class FewestOutstanding:
    """The candidate with the fewest outstanding messages; ties go to the highest id."""

    uses_load: ClassVar[bool] = True
    seen: ClassVar[list[dict[str, int]]] = []

    def __init__(self, rng: random.Random | None) -> None:
        self.rng = rng

    def select(self, message: Envelope, candidates: Sequence[Candidate]) -> Candidate:
        self.seen.append({c.id: c.outstanding for c in candidates})
        return min(reversed(candidates), key=lambda c: c.outstanding)


async def test_a_load_aware_user_strategy_sees_outstanding_messages(
    make_client: MakeClient,
) -> None:
    FewestOutstanding.seen = []
    client = make_client(strategy=FewestOutstanding)
    release = asyncio.Event()
    handled: list[tuple[str, int]] = []
    slow = client.subscriber(member_id="m0")

    @slow.handler("work")
    async def block(n: int) -> None:
        handled.append(("m0", n))
        await release.wait()

    await slow.start()
    await client.publish("work", 0)  # m0 alone: it takes this one and holds it
    await wait_for(lambda: handled == [("m0", 0)])
    quick = client.subscriber(member_id="m1")

    @quick.handler("work")
    async def run(n: int) -> None:
        handled.append(("m1", n))

    await quick.start()
    for n in range(1, 6):
        await client.publish("work", n)
        count = n + 1
        await wait_for(lambda: len(handled) == count)  # noqa: B023 - awaited here

        async def settled(done: int = n) -> bool:  # its ack landed: m1 holds nothing again
            stats = await client.stats()
            return sum(g.processed for g in stats.groups if g.topic == "work") == done

        await eventually(settled)
    release.set()
    await client.join()
    assert handled == [("m0", 0)] + [("m1", n) for n in range(1, 6)]
    both = [s for s in FewestOutstanding.seen if set(s) == {"m0", "m1"}]
    assert len(both) == 5
    assert all(s["m0"] == 1 for s in both)
