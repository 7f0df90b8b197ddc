"""Clocks: the system one, and a manual one tests move by hand."""

from __future__ import annotations

import time

from broker.errors import InvalidArgument

__all__ = ["ManualClock", "SystemClock"]


class SystemClock:
    """Wall-clock time in seconds."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that only moves when told to; for tests of leases, heartbeats and delays."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        if seconds < 0:
            raise InvalidArgument("seconds", seconds, "0 or more: a clock cannot go back")
        self._now += seconds
