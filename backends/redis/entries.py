"""Stream entries (``t`` topic, ``a`` deliveries, ``e`` envelope): parsing them, well-formed
or not, and creating a stream's consumer group."""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec
from redis import exceptions as redis_errors

from broker.backends.redis.connection import translate_errors
from broker.backends.redis.keys import CONSUMER_GROUP
from broker.message import Envelope

__all__ = ["Entry", "Malformed", "create_group", "decode_text", "parse_entry"]

_envelope = msgspec.msgpack.Decoder(Envelope)
_replace = msgspec.structs.replace


def decode_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def create_group(client: Any, stream: str) -> None:
    """Create the consumer group of ``stream`` (and the stream) from its first entry, if absent.

    From the first entry, not from ``$``: a group made after messages were added must see them.
    """
    with translate_errors("create consumer group"):
        try:
            await client.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
        except redis_errors.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


class Entry(NamedTuple):
    """A well-formed entry: its topic, deliveries so far and envelope (attempt not yet set)."""

    topic: str
    deliveries: int
    envelope: Envelope


class Malformed(NamedTuple):
    """An entry that cannot be delivered, as the envelope its dead letter keeps.

    ``counted`` says the routing fields are well-formed, so the entry was stored by the
    scripts, which count it in the group's queue counters (an undecodable envelope).
    """

    envelope: Envelope
    reason: str
    counted: bool


def _deliveries(fields: dict[bytes, Any]) -> int | str:
    raw = fields.get(b"a")
    if raw is None:
        return "malformed stream entry: no attempt field 'a'"
    try:
        return int(raw)
    except ValueError:
        return f"malformed stream entry: attempt field 'a' is not a number: {raw!r}"


def parse_entry(receipt: str, fields: dict[bytes, Any], topic: str = "") -> Entry | Malformed:
    """Read one entry's fields; what is missing or not of its type makes it `Malformed`.

    Args:
        receipt: the entry id (the dead letter's message id when the envelope is unreadable).
        fields: the entry's fields as redis-py returns them.
        topic: the topic of the stream, when the stream holds one topic (hybrid mode).
    """
    raw_topic = fields.get(b"t")
    deliveries = _deliveries(fields)
    data = fields.get(b"e")
    reason = ""
    envelope: Envelope | None = None
    if data is None:
        reason = "malformed stream entry: no envelope field 'e'"
    else:
        try:
            envelope = _envelope.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            reason = f"undecodable envelope: {exc}"
    if raw_topic is None:
        reason = reason or "malformed stream entry: no topic field 't'"
    if isinstance(deliveries, str):
        reason = reason or deliveries
    name = decode_text(raw_topic) if raw_topic is not None else topic
    if envelope is not None and not reason:
        assert isinstance(deliveries, int)
        return Entry(name, deliveries, envelope)
    attempt = deliveries + 1 if isinstance(deliveries, int) else 1
    lost = Envelope(
        id=receipt,
        topic=name or (envelope.topic if envelope is not None else ""),
        payload=data if isinstance(data, bytes) else b"",
        created_at=0.0,
        attempt=attempt,
    )
    return Malformed(lost, reason, raw_topic is not None and isinstance(deliveries, int))
