"""Request/reply latency: broker's RPC in redis and hybrid modes beside a Redis PING and taskiq.

Run: ``python benchmarks/rpc_latency.py [--url redis://127.0.0.1:6379/9] [--requests 2000]
[--markdown [FILE]]``. Every system answers ``echo(n) -> n`` from its own spawned process and is
called sequentially from this one, after uncounted warm-up calls; the raw PING is the floor the
ratios are taken against. Progress on stderr, one table on stdout (``--markdown``: also as
markdown with the target verdicts, to stdout or FILE). Keys go under a fresh prefix
``bench-rpc-<hex>-*`` (and ``autoclaim:bench-rpc-<hex>-*``, taskiq's stream lock) and are deleted
with SCAN + DEL at the end, so the database need not be a scratch one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import secrets
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from importlib.metadata import version
from multiprocessing.synchronize import Event as MpEvent
from typing import Any

from redis.utils import HIREDIS_AVAILABLE
from taskiq import AsyncBroker, AsyncTaskiqDecoratedTask
from taskiq.receiver import Receiver
from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend, RedisStreamBroker

import broker
from broker.backends.redis import connect

APP = "bench"
REQUEST = "ECHO"
TASK = "bench_rpc_echo"
MAX_JOBS = 10
TIMEOUT_S = 5.0
CHECK_INTERVAL_S = 0.001  # taskiq's result polling: one EXISTS, then a sleep this long
START_DEADLINE_S = 60.0
TARGET_RATIO = 4.0  # broker p50 within this many PING p50s
PING = "raw redis-py PING (floor)"
RAW = "raw redis-py request/reply, 2 processes"
VERSIONS = (
    f"redis-py {version('redis')} (hiredis: {HIREDIS_AVAILABLE}), taskiq {version('taskiq')} + "
    f"taskiq-redis {version('taskiq-redis')}"
)
COLUMNS = ("system", "p50 ms", "p90 ms", "p99 ms", "mean ms", "p50 / PING p50")
Call = Callable[[int], Awaitable[None]]
Summary = tuple[float, float, float, float]  # p50, p90, p99, mean in ms
Row = tuple[str, Summary | None]  # None: the system failed


class BenchError(RuntimeError):
    """A responder did not start, stopped, or answered wrongly."""


def progress(text: str) -> None:
    print(f"[rpc_latency {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def cleanup(url: str, prefix: str) -> int:
    """Delete every key of this run (SCAN + DEL); returns how many."""
    client = connect(url)
    deleted = 0
    try:
        for pattern in (f"{prefix}-*", f"autoclaim:{prefix}-*"):
            keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
            for start in range(0, len(keys), 1000):
                deleted += int(await client.delete(*keys[start : start + 1000]))
    finally:
        await client.aclose()
    return deleted


# the responders, each in its own spawned process
async def taskiq_echo(n: int) -> int:
    return n


def _taskiq(
    kind: str, url: str, prefix: str
) -> tuple[AsyncBroker, AsyncTaskiqDecoratedTask[[int], Any]]:
    """A taskiq-redis broker (``list``: ListQueueBroker, ``stream``: RedisStreamBroker) with a
    Redis result backend that deletes each result as it is read, and the echo task."""
    backend: RedisAsyncResultBackend[Any] = RedisAsyncResultBackend(
        url, keep_results=False, result_ex_time=60, prefix_str=f"{prefix}:result"
    )
    queue: AsyncBroker
    if kind == "list":
        queue = ListQueueBroker(url, queue_name=f"{prefix}:queue")
    else:
        queue = RedisStreamBroker(url, queue_name=f"{prefix}:stream", consumer_group_name=prefix)
    queue = queue.with_result_backend(backend)
    return queue, queue.register_task(taskiq_echo, task_name=TASK)


def _broker_client(mode: str, url: str, prefix: str) -> broker.Client:
    build = broker.new_hybrid_client if mode == "hybrid" else broker.new_redis_client
    return build(APP, url, config=broker.Config(prefix=prefix))


async def _until(stop: MpEvent) -> None:
    """Return once the parent sets ``stop``, or has died."""
    parent = multiprocessing.parent_process()
    while not await asyncio.to_thread(stop.wait, 1.0):
        if parent is not None and not parent.is_alive():
            return


async def _serve_broker(mode: str, url: str, prefix: str, ready: MpEvent, stop: MpEvent) -> None:
    async with _broker_client(mode, url, prefix) as client:
        app = broker.App(client, max_jobs=MAX_JOBS)

        @app.on_request(REQUEST)
        async def echo(n: int) -> int:
            return n

        async with app:  # started: this process is a member of the group
            ready.set()
            await _until(stop)


async def _serve_taskiq(kind: str, url: str, prefix: str, ready: MpEvent, stop: MpEvent) -> None:
    queue, _ = _taskiq(kind, url, prefix)
    queue.is_worker_process = True
    await queue.startup()
    # the defaults of ``taskiq worker``
    receiver = Receiver(queue, run_startup=False, max_async_tasks=100, max_prefetch=0)
    finish = asyncio.Event()
    listening = asyncio.create_task(receiver.listen(finish))
    waiting = asyncio.create_task(_until(stop))
    try:
        ready.set()
        await asyncio.wait({listening, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if listening.done():
            raise BenchError(f"taskiq receiver stopped: {listening.exception()!r}")
    finally:
        finish.set()
        await asyncio.wait({listening}, timeout=2.0)
        for task in (listening, waiting):
            while not task.done():  # redis-py may swallow one cancel (see redis_peers.py)
                task.cancel()
                await asyncio.wait({task}, timeout=0.1)
        await queue.shutdown()


async def _serve_raw(_: str, url: str, prefix: str, ready: MpEvent, stop: MpEvent) -> None:
    """Plain redis-py, no SDK: read each request from a stream with a blocking XREADGROUP,
    PUBLISH the reply, XACK. The smallest request/reply across two processes."""
    client = connect(url)
    stream = f"{prefix}:requests"
    await client.xgroup_create(stream, "g", id="0", mkstream=True)
    ready.set()
    waiting = asyncio.create_task(_until(stop))
    try:
        while not waiting.done():
            reply = await client.xreadgroup("g", "w", {stream: ">"}, count=10, block=200)
            for _, entries in reply or []:
                for entry, fields in entries:
                    await client.publish(fields[b"to"], fields[b"n"])
                    await client.xack(stream, "g", entry)
    finally:
        waiting.cancel()
        await client.aclose()


def _child(kind: str, url: str, prefix: str, ready: MpEvent, stop: MpEvent) -> None:
    system, _, mode = kind.partition(" ")
    serves = {"broker": _serve_broker, "taskiq": _serve_taskiq, "raw": _serve_raw}
    asyncio.run(serves[system](mode, url, prefix, ready, stop))


@contextlib.asynccontextmanager
async def responder(kind: str, url: str, prefix: str) -> AsyncIterator[None]:
    """Run a responder process for the block: started and ready on entry, stopped on exit."""
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(
        target=_child, args=(kind, url, prefix, ready, stop), name=f"{kind} responder"
    )
    proc.start()
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while not ready.is_set():  # polled, not slept on: the child may die first
            if proc.exitcode is not None:
                raise BenchError(f"{proc.name} exited with code {proc.exitcode}")
            if time.monotonic() > deadline:
                raise BenchError(f"{proc.name} not ready after {START_DEADLINE_S:.0f} s")
            await asyncio.sleep(0.01)
        yield
    finally:
        stop.set()
        proc.join(15)  # blocking on purpose: a cancel must not skip the kill
        if proc.is_alive():
            progress(f"{proc.name} did not stop; killed")
            proc.kill()
            proc.join(5)


# the callers, in this process
async def sample(name: str, call: Call, n: int, warmup: int) -> list[float]:
    """Milliseconds of each of ``n`` sequential calls, after ``warmup`` uncounted ones."""
    for index in range(warmup):
        await call(index)
    samples: list[float] = []
    step = max(n // 4, 1)
    clock = time.perf_counter_ns
    for index in range(n):
        started = clock()
        await call(index)
        samples.append((clock() - started) / 1e6)
        if (index + 1) % step == 0:
            progress(f"{name}: {index + 1}/{n}")
    return samples


async def ping(url: str, n: int, warmup: int) -> list[float]:
    client = connect(url)  # the same pool settings as broker's clients

    async def call(_: int) -> None:
        await client.ping()

    try:
        return await sample("redis PING", call, n, warmup)
    finally:
        await client.aclose()


async def raw_rpc(url: str, prefix: str, n: int, warmup: int) -> list[float]:
    """The floor of a request/reply across processes: XADD, then wait on Pub/Sub."""
    async with responder("raw stream", url, prefix):
        client = connect(url)
        listener = client.pubsub()
        channel = f"{prefix}:reply"
        await listener.subscribe(channel)
        await listener.get_message(timeout=5.0)  # the subscription's confirmation
        stream = f"{prefix}:requests"

        async def call(index: int) -> None:
            await client.xadd(stream, {"n": index, "to": channel})
            while True:
                message = await listener.get_message(timeout=TIMEOUT_S)
                if message is None:
                    raise BenchError(f"raw: no reply to {index}")
                if message["type"] == "message":
                    break
            if int(message["data"]) != index:
                raise BenchError(f"raw: asked {index}, got {message['data']!r}")

        try:
            return await sample("raw request/reply", call, n, warmup)
        finally:
            await listener.aclose()
            await client.aclose()


async def broker_rpc(mode: str, url: str, prefix: str, n: int, warmup: int) -> list[float]:
    async with (
        responder(f"broker {mode}", url, prefix),
        _broker_client(mode, url, prefix) as client,
        broker.App(client) as app,
    ):

        async def call(index: int) -> None:
            reply = await app.request(REQUEST, index, timeout=TIMEOUT_S, returns=int)
            if reply != index:
                raise BenchError(f"broker {mode}: asked {index}, got {reply!r}")

        return await sample(f"broker {mode}", call, n, warmup)


async def taskiq_rpc(kind: str, url: str, prefix: str, n: int, warmup: int) -> list[float]:
    async with responder(f"taskiq {kind}", url, prefix):
        queue, task = _taskiq(kind, url, prefix)
        await queue.startup()

        async def call(index: int) -> None:
            sent = await task.kiq(index)
            result = await sent.wait_result(check_interval=CHECK_INTERVAL_S, timeout=TIMEOUT_S)
            if result.is_err or result.return_value != index:
                raise BenchError(f"taskiq {kind}: asked {index}, got {result!r}")

        try:
            return await sample(f"taskiq {kind}", call, n, warmup)
        finally:
            await queue.shutdown()


def summarize(samples: Sequence[float]) -> Summary:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[89], cuts[98], statistics.fmean(samples)


async def _try(name: str, run: Callable[[], Awaitable[list[float]]]) -> Summary | None:
    progress(f"measuring {name}")
    started = time.perf_counter()
    try:
        samples = await run()
    except Exception as exc:  # a broken system must not hide the other rows
        progress(f"{name} failed: {type(exc).__name__}: {exc}")
        return None
    summary = summarize(samples)
    progress(f"{name}: p50 {summary[0]:.3f} ms in {time.perf_counter() - started:.1f} s")
    return summary


# the report
def _cells(rows: Sequence[Row]) -> list[list[str]]:
    floor = rows[0][1][0] if rows and rows[0][1] is not None else None
    out = []
    for system, summary in rows:
        if summary is None:
            out.append([system, *("-" * len(COLUMNS[1:]))])
            continue
        ratio = "-" if floor is None else f"{summary[0] / floor:.2f}x"
        out.append([system, *(f"{value:.3f}" for value in summary), ratio])
    return out


def format_text(rows: Sequence[Row]) -> str:
    lines = [list(COLUMNS), *_cells(rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    out = []
    for line in lines:
        cells = [line[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        out.append("  ".join(cells))
    return "\n".join(out)


def format_markdown(rows: Sequence[Row]) -> str:
    rule = "|---|" + "---:|" * len(COLUMNS[1:])
    lines = ["| " + " | ".join(cells) + " |" for cells in [list(COLUMNS), *_cells(rows)]]
    return "\n".join([lines[0], rule, *lines[1:]])


def verdicts(rows: Sequence[Row]) -> list[str]:
    """One line per target: broker p50 within 4x the PING p50, and below every peer."""
    found = dict(rows)
    floor = found.get(PING)
    peers = [(name, s[0]) for name, s in rows if name.startswith("taskiq") and s is not None]
    best = min(peers, key=lambda peer: peer[1]) if peers else None
    lines = []
    for mode in ("redis", "hybrid"):
        summary = found.get(f"broker {mode}")
        if summary is None or floor is None:
            lines.append(f"- broker {mode}: not measured")
            continue
        p50, ratio = summary[0], summary[0] / floor[0]
        met = "met" if ratio <= TARGET_RATIO else "not met"
        lines.append(
            f"- broker {mode} p50 within {TARGET_RATIO:g}x the PING p50: {met} "
            f"({p50:.3f} ms = {ratio:.2f}x {floor[0]:.3f} ms)"
        )
        raw = found.get(RAW)
        if raw is not None:
            lines.append(
                f"- broker {mode} p50 over the raw two-process request/reply: "
                f"+{(p50 - raw[0]) * 1000:.0f} us ({p50 / raw[0]:.2f}x {raw[0]:.3f} ms)"
            )
        if best is not None:
            met = "met" if p50 < best[1] else "not met"
            lines.append(
                f"- broker {mode} p50 below every peer: {met} ({p50:.3f} ms against "
                f"{best[1]:.3f} ms for the fastest peer, {best[0]}: {best[1] / p50:.1f}x)"
            )
    return lines


async def run(url: str, n: int, taskiq_n: int, warmup: int) -> list[Row]:
    prefix = f"bench-rpc-{secrets.token_hex(4)}"
    progress(f"{VERSIONS}, key prefix {prefix}-*")
    rows: list[Row] = []
    pings: list[float] = []

    async def ping_part() -> list[float]:
        # a third of the PINGs before, between and after the broker runs: the floor is
        # taken over the same stretch of time as what it is compared with
        pings.extend(await ping(url, n // 3, warmup))
        return pings

    plan: list[tuple[str, Callable[[], Awaitable[list[float]]]]] = [
        ("PING (1/3)", ping_part),
        (RAW, lambda: raw_rpc(url, f"{prefix}-raw", n, warmup)),
        ("broker redis", lambda: broker_rpc("redis", url, f"{prefix}-redis", n, warmup)),
        ("PING (2/3)", ping_part),
        ("broker hybrid", lambda: broker_rpc("hybrid", url, f"{prefix}-hybrid", n, warmup)),
        ("PING (3/3)", ping_part),
        (
            "taskiq ListQueueBroker",
            lambda: taskiq_rpc("list", url, f"{prefix}-list", taskiq_n, warmup),
        ),
        (
            "taskiq RedisStreamBroker",
            lambda: taskiq_rpc("stream", url, f"{prefix}-stream", taskiq_n, warmup),
        ),
    ]
    try:
        for name, bench in plan:
            if name.startswith("PING"):
                await _try(name, bench)
            else:
                rows.append((name, await _try(name, bench)))
        rows.insert(0, (PING, summarize(pings) if pings else None))
    finally:
        try:
            progress(f"deleted {await cleanup(url, prefix)} keys of {prefix}-*")
        except Exception as exc:  # keep the table of what was measured
            progress(f"could not delete the keys of {prefix}-*: {type(exc).__name__}: {exc}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--taskiq-requests", type=int, help="default: --requests")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument(
        "--markdown", nargs="?", const="-", metavar="FILE", help="also as markdown (- : stdout)"
    )
    args = parser.parse_args()
    taskiq_n = args.taskiq_requests or args.requests
    started = time.perf_counter()
    rows = asyncio.run(run(args.url, args.requests, taskiq_n, args.warmup))
    note = (
        f"{VERSIONS}. {args.requests:,} sequential calls (taskiq: {taskiq_n:,}), each system after "
        f"{args.warmup} uncounted warm-up calls; responders in their own process (broker: "
        f"App(max_jobs={MAX_JOBS}); taskiq: a Receiver with the worker CLI's defaults); taskiq "
        f"polls its result every {CHECK_INTERVAL_S * 1000:g} ms (check_interval="
        f"{CHECK_INTERVAL_S}: one EXISTS per poll; 0 would spin the CPU)."
    )
    print(f"\n{format_text(rows)}\n\n{note}")
    lines = verdicts(rows)
    print("\n".join(lines))
    if args.markdown is not None:
        text = f"{format_markdown(rows)}\n\n{note}\n\n" + "\n".join(lines) + "\n"
        if args.markdown == "-":
            print(f"\n{text}", end="")
        else:
            with open(args.markdown, "w", encoding="utf-8") as out:
                out.write(text)
    progress(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
