"""Messages: the wire envelope, what handlers receive, payload codecs and name rules."""

from __future__ import annotations

import itertools
import os
import re
import secrets
from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar

import msgspec

from broker.errors import InvalidArgument, InvalidTopic, SerializationError

__all__ = [
    "CONTENT_TYPES",
    "Codec",
    "ContentType",
    "DeadLetter",
    "Delivery",
    "Envelope",
    "Message",
    "check_name",
    "new_id",
]

T = TypeVar("T")
ContentType = Literal["msgpack", "json"]
CONTENT_TYPES: tuple[ContentType, ...] = ("msgpack", "json")


class Envelope(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One published message as stored by a backend; the payload stays encoded."""

    id: str
    topic: str
    payload: bytes
    created_at: float
    key: str | None = None
    headers: dict[str, str] = {}
    attempt: int = 0
    max_attempts: int = 3
    content_type: ContentType = "msgpack"


class Delivery(msgspec.Struct, frozen=True, gc=False):
    """An envelope leased to one member; its ack is fenced by ``attempt`` and ``receipt``."""

    envelope: Envelope
    group: str
    member: str
    attempt: int
    lease_until: float
    receipt: str = ""
    """The backend's handle of this delivery (a stream entry id on Redis)."""


class DeadLetter(msgspec.Struct, frozen=True, gc=False):
    """A message that will not be delivered again, with the reason."""

    envelope: Envelope
    group: str
    error: str
    failed_at: float


class Message(msgspec.Struct, Generic[T], frozen=True, gc=False):
    """What a handler receives: the decoded payload and the delivery's metadata.

    Annotate a handler's parameter as ``Message[Order]`` to have the payload decoded and
    validated into ``Order``.
    """

    id: str
    topic: str
    payload: T
    key: str | None
    headers: dict[str, str]
    attempt: int
    max_attempts: int
    created_at: float
    content_type: ContentType = "msgpack"
    """How the payload was encoded on the wire."""


_NAME = re.compile(r"[A-Za-z0-9._\-:/]{1,200}")
_checked: set[str] = set()


def check_name(name: str, what: str = "topic") -> str:
    """Return ``name`` if it is a valid topic or group name, else raise `InvalidTopic`."""
    if name in _checked:
        return name
    if not isinstance(name, str):
        raise InvalidTopic(repr(name), f"a {what} must be a str")
    if not 1 <= len(name) <= 200:
        raise InvalidTopic(name, f"a {what} has 1-200 characters, this has {len(name)}")
    if _NAME.fullmatch(name) is None:
        bad = sorted({c for c in name if _NAME.fullmatch(c) is None})
        raise InvalidTopic(name, f"a {what} may not contain {''.join(bad)!r}")
    if len(_checked) > 10_000:
        _checked.clear()
    _checked.add(name)
    return name


class _Ids:
    """Process-unique, sortable-enough ids: a random prefix renewed on fork and a counter."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = secrets.token_hex(6)
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}-{next(self.counter):x}"


_ids = _Ids()
os.register_at_fork(after_in_child=_ids.reset)


new_id: Callable[[], str] = _ids.next
"""A new message id, unique across processes (a random per-process prefix and a counter)."""


class Codec:
    """Encodes payloads with msgspec and builds typed decoders, once each."""

    def __init__(self, content_type: ContentType = "msgpack") -> None:
        if content_type not in CONTENT_TYPES:
            raise InvalidArgument("content_type", content_type, " or ".join(CONTENT_TYPES))
        self.content_type: ContentType = content_type
        self._encode: Callable[[Any], bytes] = (
            msgspec.msgpack.Encoder().encode
            if content_type == "msgpack"
            else msgspec.json.Encoder().encode
        )
        self._decoders: dict[tuple[ContentType, Any], Callable[[bytes], Any]] = {}

    def encode(self, payload: object) -> bytes:
        """Encode one payload; raise `SerializationError` if msgspec cannot."""
        try:
            return self._encode(payload)
        except (TypeError, msgspec.EncodeError) as exc:
            raise SerializationError(
                f"cannot encode a {type(payload).__name__} payload: {exc}; use dicts, lists, "
                "dataclasses, msgspec Structs or other types msgspec supports"
            ) from exc

    def decoder(self, content_type: ContentType, type_: Any) -> Callable[[bytes], Any]:
        """A decoder of ``content_type`` bytes into ``type_`` (validated)."""
        found = self._decoders.get((content_type, type_))
        if found is None:
            if content_type == "msgpack":
                found = msgspec.msgpack.Decoder(type_).decode
            elif content_type == "json":
                found = msgspec.json.Decoder(type_).decode
            else:
                raise InvalidArgument("content_type", content_type, " or ".join(CONTENT_TYPES))
            self._decoders[(content_type, type_)] = found
        return found
