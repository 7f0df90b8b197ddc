"""Round-robin: consecutive messages go to consecutive members."""

from __future__ import annotations

import random
from bisect import bisect_right
from operator import attrgetter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from broker.message import Envelope
    from broker.protocols import Candidate

__all__ = ["RoundRobin"]

_ID = attrgetter("id")


class RoundRobin:
    """Picks the first candidate whose id follows the last chosen id, wrapping around."""

    __slots__ = ("_last", "_rng")

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng
        self._last: str | None = None if rng is not None else ""

    def select(self, message: Envelope, candidates: Sequence[Candidate]) -> Candidate:
        last = self._last
        if last is None and self._rng is not None:
            chosen = candidates[self._rng.randrange(len(candidates))]
        else:
            index = bisect_right(candidates, last or "", key=_ID)
            chosen = candidates[index if index < len(candidates) else 0]
        self._last = chosen.id
        return chosen

    def split(
        self, messages: Sequence[Envelope], candidates: Sequence[Candidate]
    ) -> list[tuple[str, Sequence[Envelope]]]:
        """The messages per member, as `select` one by one would share them."""
        if not messages:
            return []
        count = len(candidates)
        start = candidates.index(self.select(messages[0], candidates))
        self._last = candidates[(start + len(messages) - 1) % count].id
        return [
            (candidates[(start + offset) % count].id, messages[offset::count])
            for offset in range(min(count, len(messages)))
        ]
