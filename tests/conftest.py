"""Shared fixtures: a client factory parametrised over every backend."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Protocol

import pytest

import broker
from broker.protocols import Clock

BACKENDS = ["memory"]


class MakeClient(Protocol):
    def __call__(
        self,
        app: str = "app",
        *,
        strategy: str = "round_robin",
        config: broker.Config | None = None,
        clock: Clock | None = None,
    ) -> broker.Client: ...


# Timings short enough for tests that run on the real clock.
FAST = broker.Config(
    heartbeat_ttl=3.0,
    heartbeat_interval=0.05,
    cleanup_interval=0.1,
    lease=2.0,
    retry_backoff=0.001,
    retry_backoff_max=0.01,
    grace_period=5.0,
)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_client(backend: str) -> AsyncIterator[MakeClient]:
    """Build clients on the backend under test; all are closed after the test."""
    async with AsyncExitStack() as stack:

        def make(
            app: str = "app",
            *,
            strategy: str = "round_robin",
            config: broker.Config | None = None,
            clock: Clock | None = None,
        ) -> broker.Client:
            client = broker.new_memory_client(
                app,
                strategy=strategy,
                config=config or FAST,
                clock=clock,
                rng=random.Random(7),
            )
            stack.push_async_callback(client.aclose)
            return client

        yield make


Factory = Callable[..., broker.Client]
