"""Smooth weighted round-robin (the nginx algorithm)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from broker.balancers.shares import Shares, cut

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

    def split(self, messages: Sequence[Envelope], candidates: Sequence[Candidate]) -> Shares:
        """The messages per member, as `select` one by one would share them.

        The scores repeat after a few picks (one period of ``sum(weights)`` once settled), so
        only picks up to the first repeated state are computed and the rest is cut from them.
        """
        if not messages:
            return []
        active = [c for c in candidates if c.weight > 0] or list(candidates)
        weights = [c.weight if c.weight > 0 else 1 for c in active]
        total = sum(weights)
        scores = [self._current.get(c.id, 0) for c in active]
        states: list[list[int]] = []
        seen: dict[tuple[int, ...], int] = {}
        picks: list[str] = []
        start = -1
        while len(picks) < len(messages):
            start = seen.setdefault(tuple(scores), len(states))
            if start < len(states):
                break
            states.append(scores)
            scores = [score + weight for score, weight in zip(scores, weights, strict=True)]
            best = scores.index(max(scores))
            scores[best] -= total
            picks.append(active[best].id)
        else:
            start = len(picks)
        states.append(scores)
        if len(picks) < len(messages):  # picks[start:] repeats from here on
            final = start + (len(messages) - start) % (len(picks) - start)
        else:
            final = len(picks)
        self._current = {c.id: score for c, score in zip(active, states[final], strict=True)}
        return cut(messages, picks[:start], picks[start:])

    def _forget(self, candidates: Sequence[Candidate], *, positive: bool) -> None:
        current = self._current
        self._current = {c.id: current[c.id] for c in candidates if not positive or c.weight > 0}
