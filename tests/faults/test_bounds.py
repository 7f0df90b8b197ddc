"""Bounded resources: a consumer ten times slower than its producer, and many RPCs."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

import broker
from tests.faults.conftest import Stage
from tests.faults.test_connection_faults import start_responder
from tests.processes.harness import Child, until

MB = 1024 * 1024


def rss(pid: int) -> int:
    """Resident set size of a process in bytes (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def peaks(children: list[Child], until_done: Child) -> dict[str, int]:
    """Sample every child's RSS every 50 ms until ``until_done`` exits; the peak of each."""
    top = {c.name: 0 for c in children}
    while until_done.proc.poll() is None:
        for child in children:
            top[child.name] = max(top[child.name], rss(child.pid))
        await asyncio.sleep(0.05)  # a sampling period, not a synchronisation
    return top


async def test_slow_consumer_keeps_every_process_memory_bounded(stage: Stage) -> None:
    _, site = await stage()
    worker = site.worker("w0", "--max-jobs", "5", "--slow", "0.01")  # about 500 a second
    await until(lambda: rss(worker.pid) > 0, 5, "the worker runs")
    baseline = rss(worker.pid)
    producer, _ = site.producer("p", 20_000, "--batch", "100")  # thousands a second
    top = await peaks([worker, producer], producer)
    producer.expect("published", timeout=60)
    producer.assert_exits_cleanly()

    handled = len(site.ledger.refresh())
    assert handled < 20_000 / 3, handled  # the consumer really was the slower by far
    assert top[worker.name] - baseline < 20 * MB, (baseline, top)
    assert top[producer.name] < 150 * MB, top
    worker.signal(signal.SIGTERM)
    worker.assert_exits_cleanly()


async def many_rpcs_leave_no_keys(stage: Stage, total: int) -> None:
    _, site = await stage()
    responder = start_responder(site, slow=0.0)
    requester = broker.App(site.client())
    redis = site.redis()

    async def answered() -> bool:
        try:
            reply: int = await requester.request("echo", -1, timeout=1.0)
        except (broker.RequestTimeout, broker.NoResponder):  # not registered yet
            return False
        return reply == -1

    async def acked(count: int) -> bool:  # acks land a moment after their reply
        stats = await site.client().stats(all_groups=True)
        return sum(g.processed for g in stats.groups if g.topic == "rpc:echo") >= count

    await until(answered, 20, "the responder answers")
    await until(lambda: acked(1), 5, "the first request acked")
    baseline = sorted([k async for k in redis.scan_iter(count=1000)])
    limit = asyncio.Semaphore(50)

    async def call(n: int) -> int:
        async with limit:
            result: int = await requester.request("echo", n, timeout=10.0)
            return result

    assert await asyncio.gather(*(call(n) for n in range(total))) == list(range(total))

    async def extra() -> dict[bytes, object]:
        keys = [k async for k in redis.scan_iter(count=1000)]
        return {k: await redis.type(k) for k in keys if k not in baseline}

    async def back_to_baseline() -> bool:
        return not await extra()

    await until(lambda: acked(total + 1), 5, f"{total} more requests acked")
    try:
        await until(back_to_baseline, 5, f"the keys of {total} RPCs gone")
    except AssertionError:
        left = await extra()
        raise AssertionError(f"keys left after {total} RPCs: {left}") from None
    assert await redis.dbsize() == len(baseline)
    responder.signal(signal.SIGTERM)
    responder.assert_exits_cleanly()


async def test_rpcs_leave_redis_keys_at_baseline(stage: Stage) -> None:
    await many_rpcs_leave_no_keys(stage, total=2_000)


@pytest.mark.soak
async def test_10000_rpcs_leave_redis_keys_at_baseline(stage: Stage) -> None:
    await many_rpcs_leave_no_keys(stage, total=10_000)
