"""Least connections: the member with the fewest outstanding messages."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, ClassVar

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
