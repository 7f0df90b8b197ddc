"""Routing in this process: the balancer picks, the queue stores."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from broker.balancers.local import LocalBalancer
from broker.message import Delivery, Envelope
from broker.protocols import Balancer, Closing, RoutingStore

__all__ = ["LocalDispatcher"]

_BACKLOG_BATCH = 500


async def _assigned(
    balancer: Balancer,
    group: str,
    topic: str,
    envelopes: Sequence[Envelope],
    load: Mapping[str, int],
    *,
    required: bool,
) -> list[tuple[str | None, list[Envelope]]]:
    """The envelopes per member a balancer assigns (without the unplaced ones if ``required``)."""
    members = await balancer.assign(group, topic, envelopes, load)
    batches: dict[str | None, list[Envelope]] = defaultdict(list)
    for member, envelope in zip(members, envelopes, strict=True):
        if member is not None or not required:
            batches[member].append(envelope)
    return list(batches.items())


def _by_topic(envelopes: Sequence[Envelope]) -> dict[str, list[Envelope]]:
    grouped: dict[str, list[Envelope]] = defaultdict(list)
    for envelope in envelopes:
        grouped[envelope.topic].append(envelope)
    return grouped


class LocalDispatcher(Closing):
    """Asks the balancer for a member per message and pushes it to that member's inbox.

    The queue refuses a push to an inbox that closed meanwhile (the message goes to the
    backlog), and the backlog is drained again at once when live members remain.
    """

    def __init__(self, queue: RoutingStore, balancer: Balancer) -> None:
        self._queue = queue
        self._balancer = balancer

    async def aclose(self) -> None:
        await self._balancer.aclose()

    async def dispatch(
        self,
        group: str,
        topic: str,
        envelopes: Sequence[Envelope],
        *,
        require_member: bool = False,
        fan_out: bool = True,
    ) -> int:
        return await self._route(group, topic, envelopes, drain=True, required=require_member)

    async def _route(
        self,
        group: str,
        topic: str,
        envelopes: Sequence[Envelope],
        *,
        drain: bool,
        required: bool = False,
    ) -> int:
        """Push each envelope to the member the balancer picks; returns how many were placed.

        With ``required``, an envelope no live member takes is dropped instead of backlogged.
        """
        queue = self._queue
        balancer = self._balancer
        load = await queue.outstanding(group) if balancer.needs_load else {}
        if isinstance(balancer, LocalBalancer):
            batches = balancer.split(group, topic, envelopes, load)
            live = batches[0][0] is not None
            if required and not live:
                return 0
        else:
            batches = await _assigned(balancer, group, topic, envelopes, load, required=required)
            live = any(m is not None for m, _ in batches)
        backlogged = 0
        placed = 0
        for member, batch in batches:
            backlogged += await queue.push(group, member, batch)
            placed += len(batch)
        if drain and backlogged and live:
            await self.drain_backlog(group)
        return placed - backlogged

    async def reroute(self, group: str, envelopes: Sequence[Envelope]) -> None:
        for topic, batch in _by_topic(envelopes).items():
            await self._route(group, topic, batch, drain=False)

    async def handover(self, group: str, member: str, *, leased: bool) -> int:
        taken = await self._queue.detach(group, member, leased=leased)
        await self.reroute(group, taken)
        return len(taken)

    async def release(self, delivery: Delivery) -> bool:
        envelope = await self._queue.take_back(delivery)
        if envelope is None:
            return False
        await self.reroute(delivery.group, [envelope])
        return True

    async def expire_leases(self) -> int:
        expired: dict[str, list[Envelope]] = defaultdict(list)
        for group, envelope in await self._queue.take_expired():
            expired[group].append(envelope)
        for group, envelopes in expired.items():
            await self.reroute(group, envelopes)
        return sum(len(e) for e in expired.values())

    async def drain_backlog(self, group: str) -> int:
        placed = 0
        while batch := await self._queue.take_backlog(group, _BACKLOG_BATCH):
            moved = 0
            for topic, envelopes in _by_topic(batch).items():
                moved += await self._route(group, topic, envelopes, drain=False)
            placed += moved
            if moved < len(batch):
                break  # the rest waits for a member that handles its topic
        return placed
