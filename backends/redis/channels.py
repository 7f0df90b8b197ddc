"""Channels on Redis Pub/Sub: events and RPC replies, at-most-once, exact channel names."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from typing import Any

from broker.backends.redis.connection import translate_errors
from broker.backends.redis.keys import Keys
from broker.errors import BackendUnavailable
from broker.protocols import ChannelCallback, Closing

__all__ = ["RedisChannels"]

log = logging.getLogger("broker")
_CONFIRM_TIMEOUT = 10.0


class RedisChannels(Closing):
    """One Pub/Sub connection per client, opened on the first `listen`, read by one task
    that calls the callbacks. After a dropped connection the reader connects again and
    redis-py subscribes again to every channel; messages sent meanwhile are lost (Pub/Sub
    is at-most-once), and Redis disconnects a reader that falls 32 MB behind.
    """

    def __init__(self, client: Any, keys: Keys) -> None:
        self._redis = client
        self._keys = keys
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._listeners: defaultdict[bytes, list[ChannelCallback]] = defaultdict(list)
        self._confirming: defaultdict[bytes, list[asyncio.Future[None]]] = defaultdict(list)
        self._lock = asyncio.Lock()
        self._closed = False

    def _name(self, channel: str) -> bytes:
        return self._keys.channel(channel).encode()

    async def send(self, channel: str, data: bytes) -> int:
        with translate_errors(f"send on channel {channel!r}"):
            return int(await self._redis.publish(self._name(channel), data))

    async def listen(self, channel: str, callback: ChannelCallback) -> None:
        name = self._name(channel)
        async with self._lock:
            callbacks = self._listeners[name]
            callbacks.append(callback)
            if len(callbacks) > 1:
                return
            if self._pubsub is None:
                if hasattr(self._redis, "get_primaries"):  # a cluster learns its slots first
                    with translate_errors("connect to the cluster"):
                        await self._redis.initialize()
                self._pubsub = self._redis.pubsub()
            confirmed = asyncio.get_running_loop().create_future()
            self._confirming[name].append(confirmed)
            try:
                with translate_errors(f"subscribe to channel {channel!r}"):
                    await self._pubsub.subscribe(name)
                if self._reader is None:
                    self._reader = asyncio.create_task(self._read(), name="broker-channels")
                await asyncio.wait_for(confirmed, _CONFIRM_TIMEOUT)
            except BaseException as exc:
                callbacks.remove(callback)
                waiting = self._confirming.get(name, [])
                if confirmed in waiting:
                    waiting.remove(confirmed)
                if isinstance(exc, TimeoutError):
                    raise BackendUnavailable(
                        f"Redis did not confirm the subscription to {channel!r}"
                    ) from exc
                raise

    async def unlisten(self, channel: str, callback: ChannelCallback) -> None:
        name = self._name(channel)
        async with self._lock:
            callbacks = self._listeners.get(name)
            if not callbacks or callback not in callbacks:
                return
            callbacks.remove(callback)
            if not callbacks:
                del self._listeners[name]
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(name)

    async def _read(self) -> None:
        pubsub = self._pubsub
        failures = 0
        while not self._closed:
            try:
                message = await pubsub.get_message(timeout=None)  # block: no timer per read
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                pause = min(5.0, 0.1 * 2**failures) * random.uniform(0.5, 1.5)
                log.warning("channel reader lost Redis (%s); again in %.1fs", exc, pause)
                await asyncio.sleep(pause)
                continue
            if message is not None:
                self._deliver(message)

    def _deliver(self, message: dict[str, Any]) -> None:
        kind, raw = message.get("type"), message.get("channel")
        if isinstance(kind, bytes):
            kind = kind.decode()
        name = raw.encode() if isinstance(raw, str) else bytes(raw or b"")
        if kind == "subscribe":
            for future in self._confirming.pop(name, []):
                if not future.done():
                    future.set_result(None)
        elif kind == "message":
            for callback in tuple(self._listeners.get(name, ())):
                try:
                    callback(message["data"])
                except Exception:
                    log.exception("a listener of channel %r failed", name)

    async def aclose(self) -> None:
        self._closed = True
        reader = self._reader
        while reader is not None and not reader.done():  # redis-py may swallow one cancel
            reader.cancel()
            await asyncio.wait([reader], timeout=0.1)
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        self._listeners.clear()
