"""No-op message throughput on Redis: the raw redis-py floor, arq and taskiq-redis.

Run: ``python benchmarks/redis_peers.py [--url redis://127.0.0.1:6379/9] [--messages 20000]``;
one markdown table on stdout, progress on stderr. ``redis_throughput.py`` imports ``run_peers``
and ``format_table``. Each benchmark takes ``(url, n)``, returns msgs/s, deletes its own keys
(``bench-peers:*``, ``autoclaim:bench-peers:*``, ``arq:*``: use a scratch db) and raises
``PeerBenchError`` after ``DEADLINE_S``. arq keeps no results (``keep_result=0``), like taskiq's
default backend; neither peer has a bulk enqueue API.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import multiprocessing
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from importlib.metadata import version
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as MpEvent
from typing import Any

import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT
from redis.utils import HIREDIS_AVAILABLE
from taskiq.receiver import Receiver
from taskiq_redis import RedisStreamBroker

try:  # arq pins redis<6, so it is installed apart (see benchmarks/README.md)
    from arq.connections import ArqRedis, RedisSettings, create_pool
    from arq.worker import Worker, func
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_ARQ = False
else:
    HAVE_ARQ = True

BATCH = 100
DEADLINE_S = 300.0
PREFIX = "bench-peers"
STREAM = f"{PREFIX}:raw"
GROUP = PREFIX
PAYLOAD: dict[FieldT, EncodableT] = {b"data": b'{"n":0}'}
ARQ_OPTIONS: dict[str, Any] = {"max_jobs": 100, "poll_delay": 0.005, "keep_result": 0}
KEY_PATTERNS = (f"{PREFIX}:*", f"autoclaim:{PREFIX}:*", "arq:*")
COLUMNS = (
    "system",
    "sequential publish/s",
    "pipelined or bulk publish/s",
    "drain msgs/s (1 worker process)",
    "end to end msgs/s",
)
Row = tuple[str, Sequence[float | None]]  # system, then one rate (or None) per column
Bench = Callable[[str, int], Awaitable[float]]
Role = Callable[[str, int, MpEvent, MpEvent], Coroutine[Any, Any, None]]


class PeerBenchError(RuntimeError):
    """A measured system did not process every message within the deadline."""


def progress(text: str) -> None:
    print(f"[redis_peers {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def cleanup(url: str) -> None:
    async with aioredis.from_url(url) as client:
        for pattern in KEY_PATTERNS:
            if keys := [key async for key in client.scan_iter(match=pattern, count=1000)]:
                await client.unlink(*keys)


def bounded(fn: Bench) -> Callable[[str, int], Coroutine[Any, Any, float]]:
    """Delete this module's keys around ``fn``; stop it after ``DEADLINE_S``. On Python 3.11
    redis-py 8 (default socket_timeout 5 s) sends each command through ``asyncio.wait_for``, which
    often swallows a cancel: so cancel until ``fn`` ends."""

    @functools.wraps(fn)
    async def run(url: str, n: int) -> float:
        await cleanup(url)
        task = asyncio.ensure_future(fn(url, n))
        try:
            await asyncio.wait({task}, timeout=DEADLINE_S)
            expired = not task.done()
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.1)
            if expired:
                cause = None if task.cancelled() else task.exception()
                raise PeerBenchError(f"{fn.__name__}: over {DEADLINE_S:.0f} s") from cause
            return task.result()
        finally:
            task.cancel()  # no-op once done; reached early only if we are cancelled ourselves
            await cleanup(url)

    return run


class Tally:
    """Counts handled messages; ``done`` is set when ``target`` is reached."""

    def __init__(self, target: int) -> None:
        self.target, self.count, self.done = target, 0, asyncio.Event()

    async def hit(self) -> None:
        self.count += 1
        if self.count >= self.target:
            self.done.set()


# raw redis-py (hiredis parser when installed): the floor every library pays on top of
async def _xadd_pipelined(client: aioredis.Redis, n: int) -> None:
    for start in range(0, n, BATCH):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(BATCH, n - start)):
            pipe.xadd(STREAM, PAYLOAD)
        await pipe.execute()


async def _xread_ack(client: aioredis.Redis, n: int, block: int | None) -> None:
    consumed = 0
    while consumed < n:
        reply = await client.xreadgroup(GROUP, "c0", {STREAM: ">"}, count=BATCH, block=block)
        if not reply:
            if block is None:
                raise PeerBenchError(f"raw: stream empty after {consumed}/{n} messages")
            continue
        entries: list[tuple[bytes, Any]] = reply[0][1]  # type: ignore[index,assignment]
        await client.xack(STREAM, GROUP, *[entry_id for entry_id, _ in entries])
        consumed += len(entries)


@bounded
async def raw_sequential_xadd(url: str, n: int) -> float:
    async with aioredis.from_url(url) as client:
        started = time.perf_counter()
        for _ in range(n):
            await client.xadd(STREAM, PAYLOAD)
        return n / (time.perf_counter() - started)


@bounded
async def raw_pipelined_xadd(url: str, n: int) -> float:
    async with aioredis.from_url(url) as client:
        started = time.perf_counter()
        await _xadd_pipelined(client, n)
        return n / (time.perf_counter() - started)


@bounded
async def raw_drain(url: str, n: int) -> float:
    async with aioredis.from_url(url) as client:
        await _xadd_pipelined(client, n)
        await client.xgroup_create(STREAM, GROUP, id="0")
        started = time.perf_counter()
        await _xread_ack(client, n, block=None)
        return n / (time.perf_counter() - started)


async def raw_ping_latency(url: str, n: int) -> tuple[float, float]:  # p50, p99 in ms
    async with aioredis.from_url(url) as client:
        samples = []
        for _ in range(n):
            started = time.perf_counter_ns()
            await client.ping()
            samples.append((time.perf_counter_ns() - started) / 1e6)
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[98]


# arq: jobs in a sorted set, polled by the worker
async def arq_noop(ctx: dict[str, Any]) -> None:
    await ctx["tally"].hit()


def _arq_worker(pool: ArqRedis, *, burst: bool, ctx: dict[str, Any]) -> Worker:
    job = func(arq_noop, name="noop")
    return Worker([job], redis_pool=pool, burst=burst, ctx=ctx, handle_signals=False, **ARQ_OPTIONS)


async def _arq_enqueue(pool: ArqRedis, n: int) -> None:
    for index in range(n):
        if await pool.enqueue_job("noop") is None:
            raise PeerBenchError(f"arq: enqueue_job returned None at job {index}")


@bounded
async def arq_enqueue_sequential(url: str, n: int) -> float:
    pool = await create_pool(RedisSettings.from_dsn(url))
    try:
        started = time.perf_counter()
        await _arq_enqueue(pool, n)
        return n / (time.perf_counter() - started)
    finally:
        await pool.aclose()


@bounded
async def arq_drain(url: str, n: int) -> float:
    """Prefill ``n`` jobs, then one burst ``Worker`` in this process runs them all."""
    pool = await create_pool(RedisSettings.from_dsn(url))
    worker = _arq_worker(pool, burst=True, ctx={"tally": Tally(n)})
    try:
        await _arq_enqueue(pool, n)
        started = time.perf_counter()
        await worker.async_run()
        elapsed = time.perf_counter() - started
        if worker.jobs_complete != n or worker.jobs_failed:
            raise PeerBenchError(f"arq: {worker.jobs_complete}/{n} ok, {worker.jobs_failed} failed")
        return n / elapsed
    finally:
        await worker.close()  # closes the pool too


# taskiq-redis RedisStreamBroker: XADD per task, XREADGROUP + XACK per task in the receiver
def _taskiq_broker(url: str, tally: Tally) -> tuple[RedisStreamBroker, Any]:
    broker = RedisStreamBroker(url, queue_name=f"{PREFIX}:taskiq", consumer_group_name=GROUP)

    async def noop() -> None:
        await tally.hit()

    return broker, broker.register_task(noop, task_name="bench_noop")


@bounded
async def taskiq_enqueue_sequential(url: str, n: int) -> float:
    broker, task = _taskiq_broker(url, Tally(n))
    await broker.startup()
    try:
        started = time.perf_counter()
        for _ in range(n):
            await task.kiq()
        return n / (time.perf_counter() - started)
    finally:
        await broker.shutdown()


@bounded
async def taskiq_drain(url: str, n: int) -> float:
    """Prefill ``n`` tasks, then one ``Receiver`` with the worker CLI's defaults."""
    tally = Tally(n)
    broker, task = _taskiq_broker(url, tally)
    await broker.startup()  # creates the consumer group before the prefill
    try:
        for _ in range(n):
            await task.kiq()
        broker.is_worker_process = True
        receiver = Receiver(broker, run_startup=False, max_async_tasks=100, max_prefetch=0)
        finish = asyncio.Event()
        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:  # a failing receiver cancels the wait
            group.create_task(receiver.listen(finish))
            await tally.done.wait()
            elapsed = time.perf_counter() - started
            await asyncio.sleep(0.2)  # stopped mid-batch, taskiq-redis leaves a pipeline unclosed
            finish.set()
        return n / elapsed
    finally:
        await broker.shutdown()


# end to end: one producer and one consumer process (spawned), timed by the parent
async def _raw_producer(url: str, n: int, ready: MpEvent, go: MpEvent) -> None:
    async with aioredis.from_url(url) as client:
        ready.set()
        await asyncio.to_thread(go.wait, DEADLINE_S)
        await _xadd_pipelined(client, n)


async def _raw_consumer(url: str, n: int, ready: MpEvent, done: MpEvent) -> None:
    async with aioredis.from_url(url) as client:
        await client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        ready.set()
        await _xread_ack(client, n, block=1000)
    done.set()


async def _arq_producer(url: str, n: int, ready: MpEvent, go: MpEvent) -> None:
    pool = await create_pool(RedisSettings.from_dsn(url))
    try:
        ready.set()
        await asyncio.to_thread(go.wait, DEADLINE_S)
        await _arq_enqueue(pool, n)
    finally:
        await pool.aclose()


async def _arq_consumer(url: str, n: int, ready: MpEvent, done: MpEvent) -> None:
    tally = Tally(n)
    pool = await create_pool(RedisSettings.from_dsn(url))
    worker = _arq_worker(pool, burst=False, ctx={"tally": tally})
    ready.set()
    running = asyncio.create_task(worker.async_run())
    try:
        await tally.done.wait()
        done.set()
        worker.burst, worker.max_burst_jobs = True, 0  # arq's own clean stop: no new jobs
        await running
    finally:
        await worker.close()


def _child(role: Role, url: str, n: int, ready: MpEvent, signal: MpEvent) -> None:
    asyncio.run(role(url, n, ready, signal))  # the parent kills it if it overruns


async def _wait_for(event: MpEvent, procs: list[BaseProcess]) -> None:
    while not event.is_set():
        if failed := [proc for proc in procs if proc.exitcode not in (None, 0)]:
            raise PeerBenchError(f"{failed[0].name} exited with code {failed[0].exitcode}")
        await asyncio.sleep(0.002)


async def _end_to_end(url: str, n: int, producer: Role, consumer: Role) -> float:
    """Rate from the producer's go signal to the consumer's last message, timed here."""
    ctx = multiprocessing.get_context("spawn")
    consumer_ready, consumer_done, producer_ready, go = (ctx.Event() for _ in range(4))
    procs: list[BaseProcess] = [
        ctx.Process(target=_child, args=(consumer, url, n, consumer_ready, consumer_done)),
        ctx.Process(target=_child, args=(producer, url, n, producer_ready, go)),
    ]
    try:
        for proc in procs:
            proc.start()
        await _wait_for(consumer_ready, procs)
        await _wait_for(producer_ready, procs)
        started = time.perf_counter()
        go.set()
        await _wait_for(consumer_done, procs)
        rate = n / (time.perf_counter() - started)
    finally:
        for proc in (proc for proc in procs if proc.pid is not None):  # the started ones
            proc.join(10)  # blocking on purpose: a cancel must not skip the kill
            proc.kill()  # no-op once it has exited
    if any(proc.exitcode for proc in procs):
        raise PeerBenchError(f"end to end: exit codes {[proc.exitcode for proc in procs]}")
    return rate


@bounded
async def raw_end_to_end(url: str, n: int) -> float:
    return await _end_to_end(url, n, _raw_producer, _raw_consumer)


@bounded
async def arq_end_to_end(url: str, n: int) -> float:
    return await _end_to_end(url, n, _arq_producer, _arq_consumer)


async def measure(bench: Bench, url: str, n: int) -> float:
    """Run one benchmark with progress lines on stderr, every 15 s while it runs."""
    name, started = getattr(bench, "__name__", repr(bench)), time.perf_counter()
    progress(f"{name} ({n} messages) ...")

    async def tick() -> None:
        while True:
            await asyncio.sleep(15)
            progress(f"  {name}: still running after {time.perf_counter() - started:.0f} s")

    ticker = asyncio.create_task(tick())
    try:
        rate = await bench(url, n)
    finally:
        ticker.cancel()
    progress(f"{name}: {rate:,.0f} msgs/s in {time.perf_counter() - started:.1f} s")
    return rate


async def run_peers(url: str, n: int) -> tuple[list[Row], tuple[float, float]]:
    """All peer rows in table order, and the raw PING p50/p99 in ms."""
    progress(f"redis-py {version('redis')}, hiredis parser: {HIREDIS_AVAILABLE}")
    ping = await raw_ping_latency(url, min(n, 10_000))
    raw = (raw_sequential_xadd, raw_pipelined_xadd, raw_drain, raw_end_to_end)
    taskiq = f"taskiq {version('taskiq')} + taskiq-redis {version('taskiq-redis')}"
    plan: list[tuple[str, Sequence[Bench | None]]] = [
        (f"raw redis-py {version('redis')} (floor)", raw),
        (f"{taskiq} RedisStreamBroker", (taskiq_enqueue_sequential, None, taskiq_drain, None)),
    ]
    if HAVE_ARQ:
        arq = (arq_enqueue_sequential, None, arq_drain, arq_end_to_end)
        plan.insert(1, (f"arq {version('arq')}", arq))
    rows: list[Row] = []
    for system, benches in plan:
        rows.append((system, [None if b is None else await measure(b, url, n) for b in benches]))
    return rows, ping


def format_table(rows: Sequence[Row]) -> str:
    body = [[system, *("—" if r is None else f"{r:,.0f}" for r in rates)] for system, rates in rows]
    lines = [list(COLUMNS), ["---"] * len(COLUMNS), *body]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    started = time.perf_counter()
    rows, (p50, p99) = asyncio.run(run_peers(args.url, args.messages))
    print(format_table(rows))
    print(f"\nraw PING latency: p50 {p50:.3f} ms, p99 {p99:.3f} ms. {args.messages} messages.")
    progress(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
