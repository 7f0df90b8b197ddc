"""Acks of one member's inbox, coalesced: one fenced script call per batch."""

from __future__ import annotations

import asyncio

from broker.backends.redis.connection import translate_errors
from broker.backends.redis.scripts import Scripts

__all__ = ["AckBatch"]


class AckBatch:
    """Acks of one inbox go out in ``ack.lua`` calls, one at a time.

    The first ack is sent at the end of its event-loop turn; acks made while a call is on its
    way wait for it and then go out together in the next one. An idle member's ack costs one
    round trip as before, and a busy one settles a whole round trip's acks in one call
    instead of one call per turn.

    Args:
        scripts: the loaded scripts.
        keys: ``ack.lua``'s KEYS: the stream, its leases, the load hash, the stats hash.
        consumer: the consumer-group consumer that must hold each entry (the fence).
        background: where the sending tasks are kept until they finish.
    """

    def __init__(
        self,
        scripts: Scripts,
        keys: list[str],
        consumer: str,
        background: set[asyncio.Future[None]],
    ) -> None:
        self._scripts = scripts
        self._keys = keys
        self._consumer = consumer
        self._background = background
        self._waiting: list[tuple[str, str, asyncio.Future[bool]]] = []
        self._sending = False

    def submit(self, receipt: str, topic: str) -> asyncio.Future[bool]:
        """Queue the ack of one entry; the future tells whether Redis took it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._waiting.append((receipt, topic, future))
        if not self._sending:
            self._sending = True
            loop.call_soon(self._start)
        return future

    async def ack(self, receipt: str, topic: str) -> bool:
        return await self.submit(receipt, topic)

    def _start(self) -> None:
        task = asyncio.ensure_future(self._send_all())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_all(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                await self._send(batch)
        finally:
            self._sending = False

    async def _send(self, batch: list[tuple[str, str, asyncio.Future[bool]]]) -> None:
        args: list[str] = [self._consumer]
        for receipt, topic, _ in batch:
            args += [receipt, topic]
        try:
            with translate_errors("ack"):
                done = await self._scripts.ack(self._keys, args)
        except Exception as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), ok in zip(batch, done, strict=True):
            if not future.done():
                future.set_result(bool(ok))
