"""Consistent hashing by weighted rendezvous (highest-random-weight) hashing."""

from __future__ import annotations

import random
import struct
from hashlib import blake2b
from math import log
from typing import TYPE_CHECKING

from broker.balancers.shares import Shares

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from broker.message import Envelope
    from broker.protocols import Candidate

__all__ = ["ConsistentHash"]

_MASK = (1 << 64) - 1
_CACHE_LIMIT = 10_000
_KNOWN_LIMIT = 4096


def _hash(data: bytes) -> int:
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little")


class _Lanes:
    """Member hashes packed 128 bits apart in one int, so each big-int op mixes them all.

    Lanes are ordered by weight, so each run of equal weights needs one log for its best lane.
    """

    __slots__ = (
        "candidates",
        "chosen",
        "groups",
        "known",
        "mask",
        "ones",
        "packed",
        "shares",
        "size",
        "unpack",
    )

    def __init__(self, candidates: tuple[Candidate, ...], hashes: list[int]) -> None:
        weights = [c.weight if c.weight > 0 else 0 for c in candidates]
        if not any(weights):
            weights = [1] * len(candidates)
        order = sorted((i for i, w in enumerate(weights) if w), key=weights.__getitem__)
        self.candidates = candidates
        self.chosen = [candidates[i] for i in order]
        self.shares: list[list[Envelope]] = [[] for _ in order]
        """Reused by `ConsistentHash.split`, one per lane."""
        self.known: dict[str, Callable[[Envelope], None]] = {}
        """Routing key -> ``append`` of its lane's share, for these candidates only."""
        self.groups: list[tuple[int, int, int]] = []
        for lane, i in enumerate(order):
            if self.groups and self.groups[-1][0] == weights[i]:
                self.groups[-1] = (weights[i], self.groups[-1][1], lane + 1)
            else:
                self.groups.append((weights[i], lane, lane + 1))
        self.packed = sum(hashes[i] << (128 * lane) for lane, i in enumerate(order))
        self.ones = sum(1 << (128 * lane) for lane in range(len(order)))
        self.mask = self.ones * _MASK
        self.size = 16 * len(order)
        self.unpack = struct.Struct("<" + "Q8x" * len(order)).unpack


class ConsistentHash:
    """Sends each routing key (or payload) to the member with the highest weight / -ln(hash)."""

    __slots__ = ("_lanes", "_members")

    def __init__(self, rng: random.Random | None = None) -> None:
        self._members: dict[str, int] = {}
        self._lanes = _Lanes((), [])

    def select(self, message: Envelope, candidates: Sequence[Candidate]) -> Candidate:
        lanes = self._lanes_for(candidates)
        return lanes.chosen[self._lane(message, lanes)]

    def split(self, messages: Sequence[Envelope], candidates: Sequence[Candidate]) -> Shares:
        """The messages per member, as `select` one by one would share them.

        Each routing key's share is remembered (up to a bound) while the members stay the
        same, so a repeated key costs one dict lookup and no hashing.
        """
        lanes = self._lanes_for(candidates)
        known = lanes.known
        shares = lanes.shares
        for share in shares:
            share.clear()
        get = known.get
        for message in messages:
            add = get(message.key)  # type: ignore[arg-type]
            if add is None:
                key = message.key
                add = shares[self._lane(message, lanes)].append
                if key is not None:
                    if len(known) >= _KNOWN_LIMIT:
                        known.clear()
                    known[key] = add
            add(message)
        out: Shares = [(c.id, s.copy()) for c, s in zip(lanes.chosen, shares, strict=True) if s]
        for share in shares:
            share.clear()
        return out

    def _lanes_for(self, candidates: Sequence[Candidate]) -> _Lanes:
        lanes = self._lanes
        if candidates is not lanes.candidates:
            members = tuple(candidates)
            if members != lanes.candidates:
                lanes = self._lanes = _Lanes(members, [self._member(c.id) for c in members])
        return lanes

    @staticmethod
    def _lane(message: Envelope, lanes: _Lanes) -> int:
        """The index in ``lanes.chosen`` of the member for ``message``."""
        key = message.key
        mask = lanes.mask
        x = lanes.packed ^ (_hash(message.payload if key is None else key.encode()) * lanes.ones)
        x = (((x ^ (x >> 30)) & mask) * 0xBF58476D1CE4E5B9) & mask
        x = (((x ^ (x >> 27)) & mask) * 0x94D049BB133111EB) & mask
        values: tuple[int, ...] = lanes.unpack((x ^ (x >> 31)).to_bytes(lanes.size, "little"))
        if len(lanes.groups) == 1:
            return values.index(max(values))
        best, best_score = 0, 0.0
        for weight, start, stop in lanes.groups:
            top = max(values[start:stop])
            score = weight / -log(((top >> 12) + 0.5) * 2.0**-52)
            if score > best_score:
                best, best_score = values.index(top, start, stop), score
        return best

    def _member(self, member: str) -> int:
        found = self._members.get(member)
        if found is None:
            if len(self._members) > _CACHE_LIMIT:
                self._members.clear()
            found = self._members[member] = _hash(member.encode())
        return found
