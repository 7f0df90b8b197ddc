"""The built-in balancing strategies, tested through `select` alone."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from hashlib import blake2b
from pathlib import Path
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.balancers.consistent_hash import ConsistentHash
from broker.balancers.least_connections import LeastConnections
from broker.balancers.round_robin import RoundRobin
from broker.balancers.strategies import STRATEGIES, StrategyName, make_strategy
from broker.balancers.weighted import Weighted
from broker.errors import ConfigError
from broker.message import Envelope
from broker.protocols import Candidate, Strategy

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = settings(database=None, deadline=None, max_examples=40)


def envelope(i: int = 0, key: str | None = None, payload: bytes | None = None) -> Envelope:
    body = payload if payload is not None else f"payload-{i}".encode()
    return Envelope(id=f"id-{i}", topic="t", payload=body, created_at=0.0, key=key)


def members(
    n: int, weights: list[int] | None = None, outstanding: list[int] | None = None
) -> tuple[Candidate, ...]:
    return tuple(
        Candidate(
            f"m{i:02d}",
            weight=weights[i] if weights else 1,
            outstanding=outstanding[i] if outstanding else 0,
        )
        for i in range(n)
    )


def picks(strategy: Strategy, candidates: tuple[Candidate, ...], count: int) -> list[str]:
    return [strategy.select(envelope(i), candidates).id for i in range(count)]


def longest_runs(ids: list[str]) -> dict[str, int]:
    runs: dict[str, int] = {}
    previous, run = "", 0
    for member in ids:
        run = run + 1 if member == previous else 1
        previous = member
        runs[member] = max(runs.get(member, 0), run)
    return runs


def following(ids: list[str], last: str) -> str:
    return next((m for m in ids if m > last), ids[0])


@SETTINGS
@given(n=st.integers(1, 12), count=st.integers(0, 500))
def test_round_robin_is_even_and_consecutive(n: int, count: int) -> None:
    candidates = members(n)
    ids = [c.id for c in candidates]
    chosen = picks(RoundRobin(), candidates, count)
    counts = Counter(chosen)
    assert all(counts[m] in (count // n, count // n + 1) for m in ids)
    assert chosen == [ids[i % n] for i in range(count)]


@SETTINGS
@given(
    n=st.integers(2, 12),
    before=st.integers(0, 30),
    gone=st.integers(0, 11),
    seed=st.integers(0, 2**32),
)
def test_round_robin_keeps_rotating_when_a_member_leaves(
    n: int, before: int, gone: int, seed: int
) -> None:
    candidates = members(n)
    strategy = RoundRobin(random.Random(seed))
    last = picks(strategy, candidates, before + 1)[-1]
    remaining = tuple(c for i, c in enumerate(candidates) if i != gone % n)
    ids = [c.id for c in remaining]
    after = picks(strategy, remaining, 3 * len(remaining))
    for chosen in after:
        assert chosen == following(ids, last)
        last = chosen
    assert Counter(after) == dict.fromkeys(ids, 3)


def test_round_robin_includes_a_member_that_joins() -> None:
    strategy = RoundRobin()
    assert picks(strategy, members(3), 2) == ["m00", "m01"]
    joined = tuple(sorted((*members(3), Candidate("m01a")), key=lambda c: c.id))
    assert picks(strategy, joined, 5) == ["m01a", "m02", "m00", "m01", "m01a"]


def test_round_robin_starts_at_a_random_member_with_an_rng() -> None:
    candidates = members(8)
    starts = {
        RoundRobin(random.Random(seed)).select(envelope(), candidates).id for seed in range(50)
    }
    assert len(starts) >= 5
    assert RoundRobin().select(envelope(), candidates).id == "m00"


def test_weighted_5_1_1_interleaves() -> None:
    candidates = members(3, weights=[5, 1, 1])
    chosen = picks(Weighted(), candidates, 10_000)
    assert chosen[:7] == ["m00", "m00", "m01", "m00", "m02", "m00", "m00"]
    counts = Counter(chosen)
    for candidate in candidates:
        assert abs(counts[candidate.id] / 10_000 - candidate.weight / 7) <= 0.02
    assert longest_runs(chosen)["m00"] < 5


@SETTINGS
@given(weights=st.lists(st.integers(0, 20), min_size=1, max_size=8).filter(any))
def test_weighted_shares_follow_weights_smoothly(weights: list[int]) -> None:
    candidates = members(len(weights), weights=weights)
    total = sum(weights)
    chosen = picks(Weighted(), candidates, 10_000)
    counts = Counter(chosen)
    for candidate in candidates:
        assert abs(counts[candidate.id] / 10_000 - candidate.weight / total) <= 0.02
    for start in range(0, 10_000 - total + 1, total):
        period = Counter(chosen[start : start + total])
        assert all(period[c.id] == c.weight for c in candidates)
    seen: Counter[str] = Counter()
    for k, member in enumerate(chosen[: 2 * total], start=1):
        seen[member] += 1
        assert all(seen[c.id] < k * c.weight / total + 1 for c in candidates)


def test_weighted_with_all_weights_zero_rotates_evenly() -> None:
    chosen = picks(Weighted(), members(3, weights=[0, 0, -1]), 9)
    assert chosen == ["m00", "m01", "m02"] * 3


def test_weighted_weight_change_applies_to_the_next_message() -> None:
    strategy = Weighted()
    picks(strategy, members(3), 4)
    assert strategy.select(envelope(), members(3, weights=[1, 1, 100])).id == "m02"
    zeroed = members(3, weights=[1, 0, 1])
    assert "m01" not in picks(strategy, zeroed, 20)


def test_weighted_forgets_members_that_left() -> None:
    strategy = Weighted()
    for generation in range(100):
        group = (Candidate("a"), Candidate(f"b{generation:03d}"), Candidate("c"))
        chosen = picks(strategy, group, 3)
        assert sorted(chosen) == sorted(c.id for c in group)
    assert len(strategy._current) == 3


def test_consistent_hash_is_stable_for_a_key() -> None:
    candidates = members(10)
    first = ConsistentHash()
    mapping = {key: first.select(envelope(key=key), candidates).id for key in map(str, range(200))}
    for i, (key, member) in enumerate(mapping.items()):
        assert first.select(envelope(i, key=key, payload=b"other"), candidates).id == member
        assert ConsistentHash(random.Random(i)).select(envelope(key=key), candidates).id == member
    assert first.select(envelope(key="0"), list(candidates)).id == mapping["0"]


def mapping_of(
    keys: list[str], candidates: Sequence[Candidate], strategy: Strategy | None = None
) -> list[str]:
    select = (strategy or ConsistentHash()).select
    return [select(envelope(key=key), candidates).id for key in keys]


def test_consistent_hash_is_stable_across_processes() -> None:
    keys = [f"order-{i}" for i in range(100)]
    script = (
        "import json, sys\n"
        "from broker.balancers.consistent_hash import ConsistentHash\n"
        "from broker.message import Envelope\n"
        "from broker.protocols import Candidate\n"
        "s = ConsistentHash()\n"
        "c = tuple(Candidate(f'm{i:02d}') for i in range(10))\n"
        "keys = json.loads(sys.argv[1])\n"
        "print(json.dumps([s.select(Envelope('i', 't', b'', 0.0, key=k), c).id for k in keys]))\n"
    )
    expected = mapping_of(keys, members(10))
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(
            [sys.executable, "-c", script, json.dumps(keys)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(out.stdout) == expected


def test_consistent_hash_moves_few_keys_when_a_member_joins() -> None:
    keys = [f"key-{i}" for i in range(10_000)]
    strategy = ConsistentHash()
    before = mapping_of(keys, members(10), strategy)
    after = mapping_of(keys, (*members(10), Candidate("m10")), strategy)
    moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert len(moved) <= 1_500
    assert all(a == "m10" for _, a in moved)
    assert len(moved) >= 500


def test_consistent_hash_only_moves_the_keys_of_a_member_that_leaves() -> None:
    keys = [f"key-{i}" for i in range(2_000)]
    strategy = ConsistentHash()
    before = mapping_of(keys, members(10), strategy)
    after = mapping_of(keys, [c for c in members(10) if c.id != "m03"], strategy)
    assert all(b == a for b, a in zip(before, after, strict=True) if b != "m03")
    assert "m03" not in after


def test_consistent_hash_spreads_keys_evenly() -> None:
    rng = random.Random(7)
    keys = [f"{rng.getrandbits(64):016x}" for _ in range(10_000)]
    counts = Counter(mapping_of(keys, members(10)))
    assert all(900 <= counts[f"m{i:02d}"] <= 1100 for i in range(10))


def test_consistent_hash_uses_the_payload_without_a_key() -> None:
    candidates = members(10)
    strategy = ConsistentHash()
    chosen = [strategy.select(envelope(i), candidates).id for i in range(500)]
    again = [
        ConsistentHash().select(envelope(i + 1000, payload=f"payload-{i}".encode()), candidates).id
        for i in range(500)
    ]
    assert chosen == again
    assert len(set(chosen)) == 10


def test_consistent_hash_follows_weights() -> None:
    keys = [f"key-{i}" for i in range(10_000)]
    counts = Counter(mapping_of(keys, members(3, weights=[1, 1, 2])))
    assert abs(counts["m02"] / 10_000 - 0.5) <= 0.03
    strategy = ConsistentHash()
    candidates = list(members(3))
    assert "m01" in mapping_of(keys[:100], candidates, strategy)
    candidates[1] = Candidate("m01", weight=0)
    assert "m01" not in mapping_of(keys[:1000], candidates, strategy)
    all_zero = Counter(mapping_of(keys[:3000], members(3, weights=[0, 0, 0])))
    assert all(800 <= all_zero[f"m{i:02d}"] <= 1200 for i in range(3))


def splitmix(x: int) -> int:
    mask = (1 << 64) - 1
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
    return x ^ (x >> 31)


def reference_hrw(key: str, candidates: tuple[Candidate, ...]) -> str:
    def digest(data: bytes) -> int:
        return int.from_bytes(blake2b(data, digest_size=8).digest(), "little")

    point = digest(key.encode())
    eligible = [c for c in candidates if c.weight > 0] or [Candidate(c.id) for c in candidates]

    def score(c: Candidate) -> float:
        x = splitmix(point ^ digest(c.id.encode()))
        return c.weight / -math.log(((x >> 12) + 0.5) * 2.0**-52)

    return max(eligible, key=score).id


@SETTINGS
@given(
    keys=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=20),
    weights=st.lists(st.integers(0, 5), min_size=1, max_size=12),
)
def test_consistent_hash_matches_weighted_rendezvous(keys: list[str], weights: list[int]) -> None:
    candidates = members(len(weights), weights=weights)
    assert mapping_of(keys, candidates) == [reference_hrw(k, candidates) for k in keys]


@SETTINGS
@given(outstanding=st.lists(st.integers(0, 5), min_size=1, max_size=12), seed=st.integers(0, 99))
def test_least_connections_picks_the_least_loaded(outstanding: list[int], seed: int) -> None:
    candidates = members(len(outstanding), outstanding=outstanding)
    strategy = LeastConnections(random.Random(seed))
    assert all(
        strategy.select(envelope(), candidates).outstanding == min(outstanding) for _ in range(20)
    )


def test_least_connections_rotates_among_ties() -> None:
    candidates = members(5, outstanding=[3, 1, 5, 1, 1])
    chosen = picks(LeastConnections(), candidates, 300)
    assert chosen[:6] == ["m01", "m03", "m04"] * 2
    assert Counter(chosen) == {"m01": 100, "m03": 100, "m04": 100}


def test_least_connections_gives_a_slow_member_less() -> None:
    load = [0, 0, 0, 0]
    strategy = LeastConnections()
    counts: Counter[str] = Counter()
    for step in range(400):
        chosen = strategy.select(envelope(step), members(4, outstanding=load))
        counts[chosen.id] += 1
        load[int(chosen.id[1:])] += 1
        for fast in range(3):
            load[fast] = max(load[fast] - 1, 0)
    assert counts["m03"] < counts["m00"] / 5
    assert (
        max(counts["m00"], counts["m01"], counts["m02"])
        - min(counts["m00"], counts["m01"], counts["m02"])
        <= 1
    )


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("round_robin", RoundRobin),
        ("consistent_hash", ConsistentHash),
        ("weighted", Weighted),
        ("least_conn", LeastConnections),
        ("least_connections", LeastConnections),
    ],
)
def test_make_strategy_builds_each_name(name: str, kind: type[object]) -> None:
    assert isinstance(make_strategy(name), kind)
    assert isinstance(make_strategy(name, random.Random(1)), kind)


def test_every_strategy_name_is_registered() -> None:
    assert set(get_args(StrategyName)) <= set(STRATEGIES)


def test_make_strategy_rejects_an_unknown_name() -> None:
    with pytest.raises(ConfigError, match="BALANCE_STRATEGY") as raised:
        make_strategy("fastest")
    assert raised.value.variable == "BALANCE_STRATEGY"
    assert raised.value.value == "fastest"
