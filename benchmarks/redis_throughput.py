"""broker on Redis beside raw redis-py and the peers, measured in one run.

Run: ``python benchmarks/redis_throughput.py [--url redis://127.0.0.1:6379/9] [--messages N]``.
Deletes only its own keys (prefix ``bench:``, found with SCAN) before each step. Prints one table;
copy it into ``benchmarks/README.md``. No-op handlers everywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import multiprocessing
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis_peers

import broker
from broker.backends.redis import connect

PREFIX = "bench"
TOPIC = "bench"


def _config(max_jobs: int = 100) -> broker.Config:
    return broker.Config(prefix=PREFIX, max_jobs=max_jobs, heartbeat_interval=1.0)


Build = Callable[..., broker.Client]


async def _flush(url: str) -> None:
    """Delete this benchmark's keys (never the rest of the database)."""
    client = connect(url)
    async for key in client.scan_iter(match=f"{PREFIX}:*", count=1000):
        await client.delete(key)
    await client.aclose()


async def sequential_publish(url: str, n: int, build: Build = broker.new_redis_client) -> float:
    await _flush(url)
    async with build("bench", url, config=_config()) as client:
        await client.publish(TOPIC, 0)
        started = time.perf_counter()
        for i in range(n):
            await client.publish(TOPIC, i)
        return n / (time.perf_counter() - started)


async def publish_latency(url: str, n: int) -> tuple[float, float]:
    await _flush(url)
    samples: list[float] = []
    async with broker.new_redis_client("bench", url, config=_config()) as client:
        for i in range(n):
            started = time.perf_counter()
            await client.publish(TOPIC, i)
            samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


async def bulk_publish(url: str, n: int, build: Build = broker.new_redis_client) -> float:
    await _flush(url)
    payloads = list(range(1000))
    async with build("bench", url, config=_config()) as client:
        await client.publish(TOPIC, 0)  # the topic's group is created once, before timing
        started = time.perf_counter()
        for _ in range(n // 1000):
            await client.publish_many(TOPIC, payloads)
        return n / (time.perf_counter() - started)


async def _consume(
    client: broker.Client, n: int, started: Callable[[], object] | None = None
) -> None:
    done = asyncio.Event()
    count = 0

    async def handle(msg: broker.Message[int]) -> None:
        nonlocal count
        count += 1
        if count >= n:
            done.set()

    sub = client.subscriber(member_id="worker")
    sub.add_handler(TOPIC, handle)
    await sub.start()
    if started is not None:
        started()
    await asyncio.wait_for(done.wait(), 600)


async def drain(url: str, n: int, build: Build = broker.new_redis_client) -> float:
    """Messages/s for one worker to empty a queue filled before it started."""
    await _flush(url)
    async with build("bench", url, config=_config()) as producer:
        await producer.queue.declare(TOPIC, "bench")
        for _ in range(n // 1000):
            await producer.publish_many(TOPIC, list(range(1000)))
    async with build("bench", url, config=_config()) as worker:
        started = time.perf_counter()
        await _consume(worker, n)
        return n / (time.perf_counter() - started)


def _worker_process(url: str, n: int, mode: str, ready: Any, done: Any) -> None:
    async def run() -> None:
        build = broker.new_hybrid_client if mode == "hybrid" else broker.new_redis_client
        async with build("bench", url, config=_config()) as client:
            await _consume(client, n, ready.set)
        done.set()

    asyncio.run(run())


async def end_to_end(url: str, n: int, mode: str = "redis") -> float:
    """1 producer (this process) -> 1 worker process; from first publish to last handler."""
    await _flush(url)
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    worker = ctx.Process(target=_worker_process, args=(url, n, mode, ready, done))
    worker.start()
    try:
        await asyncio.to_thread(ready.wait, 120)
        build = broker.new_hybrid_client if mode == "hybrid" else broker.new_redis_client
        async with build("bench", url, config=_config()) as producer:
            started = time.perf_counter()
            for _ in range(n // 100):
                await producer.publish_many(TOPIC, list(range(100)))
            await asyncio.to_thread(done.wait, 600)
            return n / (time.perf_counter() - started)
    finally:
        worker.join(30)
        if worker.is_alive():
            worker.kill()


async def heartbeat_cost(url: str, members: int = 1000) -> float:
    """Microseconds per heartbeat with ``members`` members registered in one group."""
    await _flush(url)
    async with broker.new_redis_client("bench", url, config=_config()) as client:
        for index in range(members):
            await client.registry.register(
                broker.MemberInfo(id=f"m{index}", group="bench", topics=(TOPIC,))
            )
        started = time.perf_counter()
        for index in range(members):
            await client.registry.heartbeat(
                "bench", f"m{index}", in_flight=0, processed=0, failed=0
            )
        return (time.perf_counter() - started) / members * 1e6


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


async def _try(name: str, run: Callable[[], Awaitable[float]]) -> float | None:
    redis_peers.progress(f"measuring {name}")
    try:
        return await run()
    except Exception as exc:  # a missing or broken peer must not hide the other rows
        print(f"  {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


async def sequential_rounds(url: str, n: int, rounds: int = 7) -> dict[str, float]:
    """Sequential publish/s of raw XADD, broker redis and broker hybrid, measured in turns
    (one short run of each per round) so a slower moment of the machine hits all three;
    the median of the rounds for each."""
    each = max(n // rounds, 100)
    runs: dict[str, Callable[[], Awaitable[float]]] = {
        "raw": lambda: redis_peers.raw_sequential_xadd(url, each),
        "redis": lambda: sequential_publish(url, each),
        "hybrid": lambda: sequential_publish(url, each, broker.new_hybrid_client),
    }
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(rounds):
        redis_peers.progress(f"sequential publish, round {round_ + 1} of {rounds}")
        for name, measure in runs.items():
            rates[name].append(await measure())
    return {name: statistics.median(values) for name, values in rates.items()}


async def run(url: str, n: int) -> None:
    rows: list[tuple[str, float | None, float | None, float | None, float | None]] = []
    sequential = await sequential_rounds(url, n)
    raw = (
        sequential["raw"],
        await _try("raw pipelined XADD", lambda: redis_peers.raw_pipelined_xadd(url, n)),
        await _try("raw drain", lambda: redis_peers.raw_drain(url, n)),
        await _try("raw end to end", lambda: redis_peers.raw_end_to_end(url, n)),
    )
    rows.append(("raw redis-py (floor)", *raw))
    rows.append(
        (
            "broker redis",
            sequential["redis"],
            await _try("broker publish_many", lambda: bulk_publish(url, n)),
            await _try("broker drain", lambda: drain(url, n)),
            await _try("broker end to end", lambda: end_to_end(url, n)),
        )
    )
    hybrid = broker.new_hybrid_client
    rows.append(
        (
            "broker hybrid",
            sequential["hybrid"],
            await _try("hybrid publish_many", lambda: bulk_publish(url, n, hybrid)),
            await _try("hybrid drain", lambda: drain(url, n, hybrid)),
            await _try("hybrid end to end", lambda: end_to_end(url, n, "hybrid")),
        )
    )
    for peer in ("taskiq", "arq") if redis_peers.HAVE_ARQ else ("taskiq",):
        enqueue: Callable[[str, int], Awaitable[float]] | None = getattr(
            redis_peers, f"{peer}_enqueue_sequential", None
        )
        drained: Callable[[str, int], Awaitable[float]] | None = getattr(
            redis_peers, f"{peer}_drain", None
        )
        if enqueue is None or drained is None:
            continue
        rows.append(
            (
                peer,
                await _try(f"{peer} enqueue", functools.partial(enqueue, url, n // 4)),
                None,
                await _try(f"{peer} drain", functools.partial(drained, url, n // 4)),
                None,
            )
        )
    redis_peers.progress("measuring publish latency")
    p50, p99 = await publish_latency(url, 5000)
    heartbeat = await _try("heartbeat cost", lambda: heartbeat_cost(url))
    await _flush(url)

    print(
        f"\n{n:,} no-op messages (peers: {n // 4:,}; sequential publish: the median of 7 "
        f"interleaved rounds of {max(n // 7, 100):,})\n"
    )
    print(
        "| system | sequential publish/s | publish_many msgs/s | drain msgs/s | end to end msgs/s |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, *values in rows:
        print(f"| {name} | " + " | ".join(_rate(v) for v in values) + " |")
    print(f"\nbroker publish latency p50 / p99: {p50:.3f} / {p99:.3f} ms")
    if heartbeat is not None:
        print(f"one heartbeat with 1,000 members registered: {heartbeat:,.0f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--messages", type=int, default=50_000)
    args = parser.parse_args()
    asyncio.run(run(args.url, args.messages - args.messages % 1000))


if __name__ == "__main__":
    main()
