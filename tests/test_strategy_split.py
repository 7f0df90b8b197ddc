"""`split` of each built-in strategy equals `select` per message, batch after batch."""

from __future__ import annotations

import random
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.balancers.strategies import STRATEGIES
from broker.message import Envelope
from broker.protocols import Candidate, Strategy

SETTINGS = settings(database=None, deadline=None, max_examples=60)
NAMES = ("round_robin", "consistent_hash", "weighted", "least_conn")

member_sets = st.lists(
    st.tuples(
        st.sampled_from([f"m{i}" for i in range(9)]),
        st.integers(min_value=-1, max_value=6),
        st.integers(min_value=0, max_value=12),
    ),
    min_size=1,
    max_size=9,
    unique_by=lambda m: m[0],
)
batches = st.lists(
    st.tuples(member_sets, st.integers(min_value=0, max_value=40)), min_size=1, max_size=6
)


def envelopes(count: int, start: int) -> list[Envelope]:
    return [
        Envelope(
            id=f"e{start + i}",
            topic="t",
            payload=f"p{(start + i) % 7}".encode(),
            created_at=0.0,
            key=None if i % 3 == 0 else f"k{(start + i) % 11}",
        )
        for i in range(count)
    ]


def one_by_one(
    strategy: Strategy, messages: Sequence[Envelope], candidates: Sequence[Candidate]
) -> dict[str, list[str]]:
    """What the balancer did before `split`: select per message, counting each choice as load."""
    counts = {c.id: c.outstanding for c in candidates}
    out: dict[str, list[str]] = {}
    for message in messages:
        loaded = [Candidate(c.id, c.weight, counts[c.id]) for c in candidates]
        chosen = strategy.select(message, loaded).id
        counts[chosen] += 1
        out.setdefault(chosen, []).append(message.id)
    return out


@SETTINGS
@given(
    name=st.sampled_from(NAMES),
    plan=batches,
    seed=st.one_of(st.none(), st.integers(min_value=0, max_value=99)),
)
def test_split_matches_select_per_message(
    name: str, plan: list[tuple[list[tuple[str, int, int]], int]], seed: int | None
) -> None:
    rng = None if seed is None else random.Random(seed)
    twin_rng = None if seed is None else random.Random(seed)
    batched, single = STRATEGIES[name](rng), STRATEGIES[name](twin_rng)
    start = 0
    for spec, count in plan:
        candidates = tuple(Candidate(i, w, o) for i, w, o in sorted(spec))
        messages = envelopes(count, start)
        start += count
        split = batched.split(messages, candidates)  # type: ignore[attr-defined]
        got = {member: [m.id for m in part] for member, part in split if part}
        assert got == one_by_one(single, messages, candidates)
