"""Acks of one hybrid topic stream, sent to Redis once per event-loop turn."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from broker.backends.redis import GroupKeys, translate_errors

if TYPE_CHECKING:
    from broker.backends.hybrid.queue import HybridQueue

__all__ = ["StreamAcks", "stream_order"]

log = logging.getLogger("broker")


def stream_order(entry: str) -> tuple[int, int]:
    ms, _, seq = entry.partition("-")
    return int(ms), int(seq)


class StreamAcks:
    """Acks of one topic stream made in the same event-loop turn: one ``hybrid_ack.lua`` call.

    The local lease already fenced the ack (a member that lost it never gets here), so a
    worker need not wait for Redis: its slot frees at once and the acks of a whole turn go
    out together. An ack Redis refuses (another process claimed the entry) is logged.
    """

    def __init__(self, queue: HybridQueue, keys: GroupKeys, topic: str) -> None:
        self._queue = queue
        self._keys = [keys.stream(topic), keys.stats]
        self._topic = topic
        self._waiting: list[tuple[str, asyncio.Future[bool] | None]] = []

    def ack(self, entry: str, *, wait: bool) -> asyncio.Future[bool] | None:
        """Queue the ack of ``entry``; with ``wait``, a future tells whether Redis took it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] | None = loop.create_future() if wait else None
        if not self._waiting:
            loop.call_soon(self.flush)
        self._waiting.append((entry, future))
        self._queue._unsettled += 1
        return future

    def flush(self) -> None:
        """Send what is waiting now (also called by `HybridQueue.aclose`)."""
        if not self._waiting:
            return
        batch, self._waiting = self._waiting, []
        task = asyncio.ensure_future(self._send(batch))
        self._queue._background.add(task)
        task.add_done_callback(self._queue._background.discard)

    async def _send(self, batch: list[tuple[str, asyncio.Future[bool] | None]]) -> None:
        entries = sorted((entry for entry, _ in batch), key=stream_order)
        scan = len(entries) + self._queue._buffer
        args: list[str | int] = [self._queue.process, self._topic, entries[0], entries[-1], scan]
        args += entries
        try:
            with translate_errors("ack"):
                done = await self._queue._scripts.hybrid_ack(self._keys, args)
            acked = {entry: bool(ok) for entry, ok in zip(entries, done, strict=True)}
        except Exception as exc:
            log.warning("%d acks on %s failed (%s); redelivered after the TTL", len(batch),
                        self._topic, exc)  # fmt: skip
            acked = {}
        finally:
            self._queue._unsettled -= len(batch)
        refused = 0
        for entry, future in batch:
            ok = acked.get(entry, False)
            refused += not ok
            if future is not None and not future.done():
                future.set_result(ok)
        if refused and acked:
            log.warning("%d acks on %s refused: another process took the entries", refused,
                        self._topic)  # fmt: skip
