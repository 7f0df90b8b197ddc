"""The programs in examples/ run as README.md says: a process of their own, a clean exit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.programs import drop_prefix, program_env, run_program, serve
from tests.redis_servers import require_redis_server, shared_redis_ok, shared_redis_url

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STRATEGIES = ("round_robin", "weighted", "consistent_hash", "least_conn")


async def test_quickstart_balances_every_strategy_without_duplicates() -> None:
    code, out = await run_program(["quickstart.py"], EXAMPLES, program_env(), timeout=120)
    assert code == 0, out
    lines = [line for line in out.splitlines() if line.startswith(STRATEGIES)]
    assert [line.split()[0] for line in lines] == list(STRATEGIES), out
    assert all(line.endswith("handled 600/600, duplicates 0: ok") for line in lines), out


async def test_client_in_memory_mode_runs_the_worker_in_its_own_process() -> None:
    code, out = await run_program(["client.py"], EXAMPLES, program_env())
    assert code == 0, out
    assert "memory mode" in out
    assert "GET_USER_INFO -> UserInfo(id=99, name='user-99'" in out
    assert "RemoteError LookupError: no user -1" in out
    assert "done: the order was handled" in out
    assert "Traceback" not in out


@pytest.fixture
def redis_env() -> Iterator[dict[str, str]]:
    """BROKER_MODE=redis on the test Redis, under a prefix of this test's own (deleted after)."""
    require_redis_server()
    url = shared_redis_url()
    if not shared_redis_ok(url):
        pytest.fail(f"no Redis answers at {url}")
    prefix = f"test-examples-{uuid.uuid4().hex[:12]}"
    try:
        yield program_env(BROKER_MODE="redis", REDIS_URL=url, QUEUE_PREFIX=prefix)
    finally:
        drop_prefix(url, prefix)


async def test_client_talks_to_a_broker_worker_process_on_redis(redis_env: dict[str, str]) -> None:
    """`BROKER_MODE=redis broker worker worker:app` in one shell, `python client.py` in another."""
    async with serve(["-m", "broker", "worker", "worker:app"], EXAMPLES, redis_env) as worker:
        code, out = await run_program(["client.py"], EXAMPLES, redis_env)
        assert code == 0, f"{out}\nworker:\n{worker.output}"
        assert "memory mode" not in out
        assert "GET_USER_INFO -> UserInfo(id=99, name='user-99'" in out, out
        assert "done: the order was handled" in out, out
        assert await worker.stop() == 0, worker.output
    assert "processing order ORD-12345 (4200 cents)" in worker.output
    assert "Alice logged in" in worker.output
    assert "Traceback" not in out + worker.output


async def test_client_without_a_worker_says_how_to_start_one(redis_env: dict[str, str]) -> None:
    code, out = await run_program(["client.py"], EXAMPLES, redis_env)
    assert code == 1, out
    assert "broker worker worker:app" in out
    assert "Traceback" not in out
