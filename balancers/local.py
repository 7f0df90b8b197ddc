"""A balancer that decides in this process, over a `MemoryRegistry`."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

from broker.balancers.registry import MemoryRegistry
from broker.balancers.shares import Shares
from broker.balancers.strategies import make_strategy
from broker.message import Envelope
from broker.protocols import Candidate, Closing, Strategy, StrategyFactory

__all__ = ["LocalBalancer"]


class LocalBalancer(Closing):
    """Picks members with one strategy instance per group.

    Args:
        registry: where live members come from.
        strategy: a strategy name (``round_robin``, ``consistent_hash``, ``weighted``,
            ``least_conn``) or a factory building your own `broker.protocols.Strategy`.
        rng: random source handed to each strategy.
    """

    def __init__(
        self,
        registry: MemoryRegistry,
        strategy: str | StrategyFactory = "round_robin",
        rng: random.Random | None = None,
    ) -> None:
        self._registry = registry
        if isinstance(strategy, str):
            name = strategy

            def factory(r: random.Random | None) -> Strategy:
                return make_strategy(name, r)

            self._factory: StrategyFactory = factory
        else:
            self._factory = strategy
        self._rng = rng
        self._strategies: dict[str, Strategy] = {}
        self._candidates: dict[tuple[str, str], tuple[Candidate, ...]] = {}
        self._seen_version = -1
        self._needs_load = bool(getattr(self._factory(rng), "uses_load", False))

    async def aclose(self) -> None:
        self._strategies.clear()
        self._candidates.clear()

    @property
    def registry(self) -> MemoryRegistry:
        return self._registry

    @property
    def needs_load(self) -> bool:
        return self._needs_load

    def _members(self, group: str, topic: str) -> tuple[Candidate, ...]:
        if self._registry.version != self._seen_version:
            self._candidates.clear()
            self._seen_version = self._registry.version
        found = self._candidates.get((group, topic))
        if found is None:
            live = self._registry.live(group)
            found = tuple(
                Candidate(id=m.id, weight=m.weight)
                for m in sorted(live.values(), key=lambda m: m.id)
                if topic in m.topics
            )
            self._candidates[(group, topic)] = found
        return found

    def _strategy(self, group: str) -> Strategy:
        strategy = self._strategies.get(group)
        if strategy is None:
            strategy = self._strategies[group] = self._factory(self._rng)
        return strategy

    async def assign(
        self,
        group: str,
        topic: str,
        envelopes: Sequence[Envelope],
        load: Mapping[str, int],
    ) -> list[str | None]:
        candidates = self._members(group, topic)
        if not candidates:
            return [None] * len(envelopes)
        if len(candidates) == 1:
            return [candidates[0].id] * len(envelopes)  # every strategy agrees
        return self._assign(group, candidates, envelopes, load)

    def _assign(
        self,
        group: str,
        candidates: tuple[Candidate, ...],
        envelopes: Sequence[Envelope],
        load: Mapping[str, int],
    ) -> list[str | None]:
        select = self._strategy(group).select
        if not self._needs_load:
            return [select(envelope, candidates).id for envelope in envelopes]
        counts = dict(load)
        chosen: list[str | None] = []
        for envelope in envelopes:
            loaded = [Candidate(c.id, c.weight, counts.get(c.id, 0)) for c in candidates]
            member = select(envelope, loaded).id
            counts[member] = counts.get(member, 0) + 1
            chosen.append(member)
        return chosen

    def split(
        self,
        group: str,
        topic: str,
        envelopes: Sequence[Envelope],
        load: Mapping[str, int],
    ) -> Sequence[tuple[str | None, Sequence[Envelope]]]:
        """Like `assign`, but the envelopes per member (in order), for one push each.

        A strategy with a ``split`` method cuts the batch itself; others pick one by one.
        """
        candidates = self._members(group, topic)
        if not candidates:
            return [(None, envelopes)]
        if len(candidates) == 1:
            return [(candidates[0].id, envelopes)]
        split: Callable[..., Shares] | None = getattr(self._strategy(group), "split", None)
        if split is None:
            chosen = self._assign(group, candidates, envelopes, load)
            shares: dict[str | None, list[Envelope]] = {}
            for member, envelope in zip(chosen, envelopes, strict=True):
                shares.setdefault(member, []).append(envelope)
            return list(shares.items())
        if self._needs_load:
            candidates = tuple(Candidate(c.id, c.weight, load.get(c.id, 0)) for c in candidates)
        return split(envelopes, candidates)
