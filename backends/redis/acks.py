"""Acks made in one event-loop turn, sent to Redis as one fenced script call."""

from __future__ import annotations

import asyncio

from backends.redis.connection import translate_errors
from backends.redis.scripts import Scripts

__all__ = ["AckBatch"]


class AckBatch:
    """Acks made in the same event-loop turn go out in one ``ack.lua`` call.

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
        self._flushing = False

    async def ack(self, receipt: str, topic: str) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((receipt, topic, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._waiting, self._flushing = self._waiting, [], False
        task = asyncio.ensure_future(self._send(batch))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

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
