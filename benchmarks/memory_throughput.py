"""Publish -> handler throughput on the memory backend, beside the raw asyncio.Queue rate.

Run: ``python benchmarks/memory_throughput.py [--messages N] [--repeat R]``. Prints one table;
every rate is the median of R runs measured in this same process. Copy the table into
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import sys
import time
from collections.abc import Callable, Coroutine

import broker

STRATEGIES = ("round_robin", "consistent_hash", "weighted", "least_conn")
BATCH = 1000
MAX_JOBS = 100


async def raw_queue(messages: int) -> float:
    """asyncio.Queue put + get of the same number of items, one producer, one consumer task."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    done = asyncio.Event()

    async def consume() -> None:
        for _ in range(messages):
            await queue.get()
        done.set()

    started = time.perf_counter()
    task = asyncio.create_task(consume())
    for i in range(messages):
        await queue.put(i)
        if i % BATCH == BATCH - 1:
            await asyncio.sleep(0)
    await done.wait()
    elapsed = time.perf_counter() - started
    await task
    return messages / elapsed


async def broker_run(messages: int, members: int, strategy: str) -> float:
    """Messages/s from the first publish to the last handler call."""
    handled = 0
    done = asyncio.Event()

    async def handle(msg: broker.Message[int]) -> None:
        nonlocal handled
        handled += 1
        if handled == messages:
            done.set()

    config = broker.Config(max_jobs=MAX_JOBS)
    async with broker.new_memory_client("bench", strategy=strategy, config=config) as client:
        for index in range(members):
            sub = client.subscriber(member_id=f"m{index}")
            sub.add_handler("bench", handle)
            await sub.start()
        payloads = list(range(BATCH))
        keys = [f"k{i}" for i in range(BATCH)]
        started = time.perf_counter()
        for _ in range(messages // BATCH):
            await client.publish_many("bench", payloads, keys=keys)
            await asyncio.sleep(0)
        await done.wait()
        return messages / (time.perf_counter() - started)


def median_of(repeat: int, run: Callable[[], Coroutine[None, None, float]]) -> float:
    return statistics.median(asyncio.run(run()) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, repeat = args.messages - args.messages % BATCH, args.repeat
    print(f"memory backend, {n:,} no-op messages, median of {repeat} runs", file=sys.stderr)

    rows: list[tuple[str, float]] = []
    raw = median_of(repeat, functools.partial(raw_queue, n))
    rows.append(("raw asyncio.Queue put+get", raw))
    print(f"  measured raw asyncio.Queue: {raw:,.0f}/s", file=sys.stderr)
    for members in (1, 8):
        for strategy in STRATEGIES:
            rate = median_of(repeat, functools.partial(broker_run, n, members, strategy))
            rows.append((f"broker {strategy}, {members} member{'s' * (members > 1)}", rate))
            print(f"  measured {rows[-1][0]}: {rate:,.0f}/s", file=sys.stderr)

    print()
    print("| run | messages/s | % of raw asyncio.Queue |")
    print("|---|---:|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} | {rate / raw:.0%} |")


if __name__ == "__main__":
    main()
