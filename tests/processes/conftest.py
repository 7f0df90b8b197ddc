"""Fixtures of the multi-process tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.processes.harness import Site
from tests.redis_servers import require_redis_server, shared_redis_ok, shared_redis_url


def new_prefix() -> str:
    return f"test-procs-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    """The shared Redis under a prefix of this test's own (its keys are deleted after)."""
    require_redis_server()
    url = shared_redis_url()
    if not shared_redis_ok(url):
        pytest.fail(f"no Redis answers at {url}")
    place = Site(url, new_prefix(), tmp_path)
    try:
        yield place
    finally:
        await place.close()
