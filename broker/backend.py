"""What a backend gives a client, and the connector that builds it from a URL.

Part of the core. A backend package exports a `Connector`; `broker.connectors` maps URL
schemes to connectors (built-in ones, ``register_backend`` and the ``broker.backends`` entry
point group), and `broker.connect` asks it for the connector of a URL's scheme.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from broker.config import Config
from broker.protocols import Channels, Clock, Dispatcher, Queue, Registry, StrategyFactory

__all__ = ["Backend", "BackendRequest", "Connector"]


@dataclasses.dataclass(frozen=True, slots=True)
class BackendRequest:
    """Everything a connector is given to build a backend.

    Attributes:
        url: the URL the backend was asked for, scheme included (``redis://host:6379/0``).
        config: timings, limits and names (its ``url`` is ``url``).
        clock: the time source every part must use (a `ManualClock` in tests).
        rng: random source for strategies and jitter (None: a fresh one).
        strategy: the strategy name or a factory of the user's own `Strategy`.
        options: keyword arguments `broker.connect` passed on, for the backend alone
            (the Redis backends take ``redis=``, an existing redis-py client).
    """

    url: str
    config: Config
    clock: Clock
    rng: random.Random | None
    strategy: str | StrategyFactory
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def option(self, name: str, default: Any = None) -> Any:
        """The value of backend option ``name``, or ``default``."""
        return self.options.get(name, default)


@dataclasses.dataclass(frozen=True, slots=True)
class Backend:
    """The parts a `Client` runs on.

    Attributes:
        queue: storage of messages and leases.
        registry: the live members of each group.
        dispatcher: which member of a group gets each message.
        channels: non-durable fan-out, for events and RPC replies.
        checks: coroutines the client runs once when it starts (before any subscriber), e.g. a
            refusal to share storage with a client of another mode.
    """

    queue: Queue
    registry: Registry
    dispatcher: Dispatcher
    channels: Channels
    checks: Sequence[Callable[[], Awaitable[None]]] = ()


class Connector(Protocol):
    """Builds a backend for a URL of its scheme; called once per client.

    It must not do I/O: connections open lazily on first use, or in ``checks``.
    """

    def __call__(self, request: BackendRequest) -> Backend: ...
