"""Cutting a batch of messages into per-member shares from a pick sequence."""

from __future__ import annotations

from collections.abc import Sequence

from broker.message import Envelope

__all__ = ["Shares", "cut"]

Shares = list[tuple[str, Sequence[Envelope]]]
"""Each member with the messages it gets, in publish order; no member twice."""


def cut(messages: Sequence[Envelope], prefix: Sequence[str], cycle: Sequence[str]) -> Shares:
    """Message ``i`` goes to ``prefix[i]``, the ones after the prefix to ``cycle`` repeated.

    A member that appears once in ``cycle`` gets its tail as one slice, with no loop per message.
    """
    head = len(prefix)
    step = len(cycle)
    shares: dict[str, list[Envelope]] = {}
    for member, message in zip(prefix, messages[:head], strict=False):
        share = shares.get(member)
        if share is None:
            share = shares[member] = []
        share.append(message)
    tail = messages[head:]
    if not tail:
        return list(shares.items())
    if len(set(cycle)) == step:
        for offset, member in enumerate(cycle[: len(tail)]):
            part = tail[offset::step]
            share = shares.get(member)
            shares[member] = part if share is None else [*share, *part]  # type: ignore[assignment]
        return list(shares.items())
    for index, message in enumerate(tail):
        member = cycle[index % step]
        share = shares.get(member)
        if share is None:
            share = shares[member] = []
        share.append(message)
    return list(shares.items())
