"""Malformed stream entries (written by another tool or an older version) are dead-lettered on
their first delivery with the reason, and never stop the flow of valid messages."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

import broker
from broker.backends.redis.keys import Keys
from broker.backends.redis.queue import encode_envelope
from broker.message import Envelope, new_id
from tests.conftest import MakeClient
from tests.contract.helpers import eventually, wait_for

TOPIC = "orders"
VALID = 200


def _stream_of(client: broker.Client, backend: str, member: str) -> tuple[Any, str]:
    """The raw redis-py client and the stream key a member's messages are read from."""
    keys = Keys(client.config.prefix).group(client.config.app_name)
    if backend == "hybrid":
        return client.queue.redis, keys.stream(TOPIC)  # type: ignore[attr-defined]
    return client.queue.redis, keys.inbox(member)  # type: ignore[attr-defined]


def _bad_entries() -> list[tuple[dict[str, Any], str]]:
    """Raw entries with what is wrong in each, and a word the dead letter's reason must hold."""
    good = encode_envelope(Envelope(id=new_id(), topic=TOPIC, payload=b"\x01", created_at=1.0))
    return [
        ({"t": TOPIC, "a": 0}, "'e'"),
        ({"t": TOPIC, "a": "two", "e": good}, "'a'"),
        ({"a": 0, "e": good}, "'t'"),
        ({"t": TOPIC, "a": 0, "e": b"\xc1\xff\x00"}, "undecodable envelope"),
        ({"t": TOPIC, "e": good}, "'a'"),
    ]


@pytest.mark.parametrize("backend", ["fakeredis", "redis", "cluster", "hybrid"], indirect=True)
async def test_malformed_entries_are_dead_lettered_and_valid_ones_flow(
    make_client: MakeClient, backend: str
) -> None:
    client = make_client()
    seen: Counter[int] = Counter()
    sub = client.subscriber()

    @sub.handler(TOPIC)
    async def handle(n: int) -> None:
        seen[n] += 1

    await sub.start()
    redis, stream = _stream_of(client, backend, sub.id)
    bad = _bad_entries()
    bad_ids = [(await redis.xadd(stream, fields)).decode() for fields, _ in bad]
    await client.publish_many(TOPIC, list(range(VALID)))

    await wait_for(lambda: len(seen) == VALID, timeout=20)
    dead: dict[str, broker.DeadLetter] = {}

    async def all_dead() -> bool:
        dead.update({d.envelope.id: d for d in await client.dead_letters()})
        return len(dead) == len(bad)

    await eventually(all_dead, timeout=10)
    assert set(dead) == set(bad_ids), "each bad entry is dead-lettered under its entry id"
    for entry, (_, word) in zip(bad_ids, bad, strict=True):
        assert word in dead[entry].error, (dead[entry].error, word)
    assert all(d.envelope.attempt == 1 for d in dead.values()), "on its first delivery"

    async def stream_settled() -> bool:
        left = {e.decode() for e, _ in await redis.xrange(stream)}
        return (
            not (left & set(bad_ids)) and (await redis.xpending(stream, "broker"))["pending"] == 0
        )

    await eventually(stream_settled, timeout=10)
    assert seen == Counter(range(VALID)), "every valid message handled exactly once"
