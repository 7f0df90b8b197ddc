"""Fixtures of the fault suite: a redis-server of the test's own and a site on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from tests.processes.conftest import new_prefix
from tests.processes.harness import Site
from tests.redis_servers import RedisServer, require_redis_server

MODES = ("redis", "hybrid")
Stage = Callable[..., Awaitable[tuple[RedisServer, Site]]]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Each scenario runs on redis mode and on hybrid mode."""
    return str(request.param)


@pytest.fixture
async def stage(tmp_path: Path, mode: str) -> AsyncIterator[Stage]:
    """Start this test's redis-server (options as given) and a site of ``mode`` on it;
    every child, client and server is closed after the test."""
    require_redis_server()
    opened: list[tuple[RedisServer, Site]] = []

    async def open_stage(
        *, appendonly: bool = False, extra_args: Sequence[str] = ()
    ) -> tuple[RedisServer, Site]:
        server = RedisServer(appendonly=appendonly, extra_args=extra_args).start()
        site = Site(server.url, new_prefix(), tmp_path, drop_keys=False, mode=mode)
        opened.append((server, site))
        return server, site

    try:
        yield open_stage
    finally:
        for server, site in opened:
            try:
                await site.close()
            finally:
                server.close()
