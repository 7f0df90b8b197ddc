"""Least connections: the member with the fewest outstanding messages."""

from __future__ import annotations

import random
from bisect import bisect_right
from typing import TYPE_CHECKING, ClassVar

from broker.balancers.shares import Shares, cut

if TYPE_CHECKING:
    from collections.abc import Sequence

    from broker.message import Envelope
    from broker.protocols import Candidate

__all__ = ["LeastConnections"]


class LeastConnections:
    """Picks the candidate with the fewest outstanding messages; ties rotate by id."""

    __slots__ = ("_last", "_rng")
    uses_load: ClassVar[bool] = True

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng
        self._last: str | None = None if rng is not None else ""

    def select(self, message: Envelope, candidates: Sequence[Candidate]) -> Candidate:
        last = self._last
        if last is None:
            last = candidates[self._rng.randrange(len(candidates))].id if self._rng else ""
        first = candidates[0]
        least = first.outstanding
        after = first if first.id > last else None
        for candidate in candidates:
            outstanding = candidate.outstanding
            if outstanding < least:
                least = outstanding
                first = candidate
                after = candidate if candidate.id > last else None
            elif outstanding == least and after is None and candidate.id > last:
                after = candidate
        chosen = after if after is not None else first
        self._last = chosen.id
        return chosen

    def split(self, messages: Sequence[Envelope], candidates: Sequence[Candidate]) -> Shares:
        """The messages per member, as `select` one by one would share them (counting each).

        The least loaded are filled level by level, each level in id order after the last
        choice; once all are level the rest is plain rotation.
        """
        if not messages:
            return []
        last = self._last
        if last is None:
            last = candidates[self._rng.randrange(len(candidates))].id if self._rng else ""
        by_load = sorted(candidates, key=lambda c: c.outstanding)
        picks: list[str] = []
        level = by_load[0].outstanding
        ids: list[str] = []
        joined = 0
        while True:
            while joined < len(by_load) and by_load[joined].outstanding <= level:
                ids.insert(bisect_right(ids, by_load[joined].id), by_load[joined].id)
                joined += 1
            turn = bisect_right(ids, last)
            rotation = ids[turn:] + ids[:turn]
            if joined == len(by_load) or len(picks) + len(rotation) >= len(messages):
                break
            picks.extend(rotation)
            last = rotation[-1]
            level += 1
        tail = len(messages) - len(picks)
        self._last = rotation[(tail - 1) % len(rotation)]
        if tail <= len(rotation):
            return cut(messages, picks + rotation[:tail], ())
        return cut(messages, picks, rotation)
