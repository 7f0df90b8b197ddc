"""Smooth weighted round-robin (the nginx algorithm)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from broker.message import Envelope
    from broker.protocols import Candidate

__all__ = ["Weighted"]


class Weighted:
    """Shares messages in proportion to weight, interleaved smoothly (5:1:1 gives a,a,b,a,c,a,a)."""

    __slots__ = ("_current",)

    def __init__(self, rng: random.Random | None = None) -> None:
        self._current: dict[str, int] = {}

    def select(self, message: Envelope, candidates: Sequence[Candidate]) -> Candidate:
        current = self._current
        total = 0
        count = 0
        best: Candidate | None = None
        best_score = 0
        for candidate in candidates:
            weight = candidate.weight
            if weight <= 0:
                continue
            score = current.get(candidate.id, 0) + weight
            current[candidate.id] = score
            total += weight
            count += 1
            if best is None or score > best_score:
                best = candidate
                best_score = score
        if best is None:
            return self._select_equal(candidates)
        current[best.id] = best_score - total
        if len(current) != count:
            self._forget(candidates, positive=True)
        return best

    def _select_equal(self, candidates: Sequence[Candidate]) -> Candidate:
        current = self._current
        best = candidates[0]
        best_score = current.get(best.id, 0) + 1
        for candidate in candidates:
            score = current.get(candidate.id, 0) + 1
            current[candidate.id] = score
            if score > best_score:
                best = candidate
                best_score = score
        current[best.id] = best_score - len(candidates)
        if len(current) != len(candidates):
            self._forget(candidates, positive=False)
        return best

    def _forget(self, candidates: Sequence[Candidate], *, positive: bool) -> None:
        current = self._current
        self._current = {c.id: current[c.id] for c in candidates if not positive or c.weight > 0}
