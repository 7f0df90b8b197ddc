"""Events: fire-and-forget broadcast to every live listener, at-most-once.

An event is an `Envelope` sent on the channel ``event:NAME``. Each listener keeps a bounded
buffer: when its handlers fall behind by ``buffer`` events, the oldest waiting event is
dropped and counted, so a slow listener never grows memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING

import msgspec

from broker.handlers import Handler
from broker.message import Delivery, Envelope
from broker.subscriber import cancel_task

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from broker.client import Client

__all__ = ["Listener", "send_event"]

log = logging.getLogger("broker")

_encode_envelope = msgspec.msgpack.Encoder().encode
_decode_envelope = msgspec.msgpack.Decoder(Envelope).decode


async def send_event(
    client: Client, channel: str, name: str, payload: object, headers: dict[str, str] | None
) -> int:
    """Encode event ``name`` and send it on ``channel``; returns how many listening
    processes got it."""
    (envelope,) = client.envelopes(name, [payload], None, headers, 1)  # encoded, size-checked
    return await client.channels.send(channel, _encode_envelope(envelope))


class Listener:
    """One ``on_event`` handler: a channel callback fills a bounded buffer, ``concurrency``
    workers run the handler over it."""

    def __init__(
        self, client: Client, channel: str, handler: Handler, *, buffer: int, concurrency: int
    ) -> None:
        self.channel = channel
        self._client = client
        self._handler = handler
        self._buffer: deque[bytes] = deque()
        self._limit = buffer
        self._concurrency = concurrency
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._busy = 0
        self._workers: list[asyncio.Task[None]] = []
        self.executor: Executor | None = None
        self.received = 0
        self.dropped = 0
        self.failed = 0

    def _on_event(self, data: bytes) -> None:
        self.received += 1
        if len(self._buffer) >= self._limit:
            self._buffer.popleft()
            self.dropped += 1
        self._buffer.append(data)
        self._wake.set()

    async def start(self) -> None:
        """Listen from now on (earlier events are not replayed) and start the workers."""
        self._workers = [
            asyncio.create_task(self._work(), name=f"broker-event-{self.channel}")
            for _ in range(self._concurrency)
        ]
        await self._client.channels.listen(self.channel, self._on_event)

    async def stop(self, grace: float) -> None:
        """Stop listening, give buffered and running handlers ``grace`` seconds, then cancel."""
        with contextlib.suppress(Exception):
            await self._client.channels.unlisten(self.channel, self._on_event)
        if self._buffer or self._busy:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace)
        for task in self._workers:
            await cancel_task(task)
        if self._buffer:
            log.warning("%d events of %s dropped at shutdown", len(self._buffer), self.channel)

    async def _work(self) -> None:
        buffer, wake = self._buffer, self._wake
        while True:
            if not buffer:
                if not self._busy:
                    self._idle.set()
                wake.clear()
                await wake.wait()
                continue
            data = buffer.popleft()
            self._busy += 1
            try:
                await self._run(data)
            finally:
                self._busy -= 1

    async def _run(self, data: bytes) -> None:
        handler = self._handler
        try:
            envelope = _decode_envelope(data)
            delivery = Delivery(envelope, "", "", 1, 0.0)
            argument = handler.argument(self._client.codec, delivery)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.failed += 1
            log.warning("dropped an undecodable event on %s: %s", self.channel, exc)
            return
        try:
            await handler.call(argument, self.executor)
        except Exception:
            self.failed += 1
            log.exception("event handler for %s failed (events are not retried)", self.channel)
