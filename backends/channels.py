"""In-process channels: events and RPC replies fanned out to the callbacks of this process."""

from __future__ import annotations

import logging
from collections import defaultdict

from broker.protocols import ChannelCallback, Closing

__all__ = ["MemoryChannels"]

log = logging.getLogger("broker")


class MemoryChannels(Closing):
    """Channels that live in this process; a send calls every listener's callback at once."""

    def __init__(self) -> None:
        self._listeners: defaultdict[str, list[ChannelCallback]] = defaultdict(list)

    async def send(self, channel: str, data: bytes) -> int:
        callbacks = self._listeners.get(channel)
        if not callbacks:
            return 0
        for callback in tuple(callbacks):
            try:
                callback(data)
            except Exception:
                log.exception("a listener of channel %s failed", channel)
        return len(callbacks)

    async def listen(self, channel: str, callback: ChannelCallback) -> None:
        self._listeners[channel].append(callback)

    async def unlisten(self, channel: str, callback: ChannelCallback) -> None:
        callbacks = self._listeners.get(channel)
        if callbacks and callback in callbacks:
            callbacks.remove(callback)
            if not callbacks:
                del self._listeners[channel]

    async def aclose(self) -> None:
        self._listeners.clear()
