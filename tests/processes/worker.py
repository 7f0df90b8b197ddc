"""A worker process: one subscriber on topic "jobs" that records each message in a ledger.

    python -m tests.processes.worker --url URL --prefix P --app APP --member ID --ledger PATH
        [--max-jobs N] [--strategy S] [--slow SECONDS] [--lease S] [--ttl S] [--grace S]
        [--started PATH] [--mode redis|hybrid]

Each handled message appends one line ``id attempt pid member`` to the ledger (one ``write``
on an ``O_APPEND`` descriptor, shorter than PIPE_BUF, so lines of several processes never
interleave). With ``--started`` the handler also appends the same line to that file when it
starts, before its optional ``--slow`` sleep. Prints ``ready`` once the subscriber started;
SIGTERM or SIGINT closes the client gracefully, prints ``stopped processed=P lost=L failed=F``
(the subscriber's own counters: acks accepted, acks refused because the lease had passed,
handler errors) and the process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import select
import signal
import sys
from typing import Any

import broker

TOPIC = "jobs"
HEARTBEAT_TTL = 2.0
HEARTBEAT_INTERVAL = 0.2
CLEANUP_INTERVAL = 0.5
LEASE = 2.0
MODES = ("redis", "hybrid")


def new_client(
    mode: str, app: str, url: str, strategy: str, config: broker.Config
) -> broker.Client:
    """A client of ``mode`` (``redis`` or ``hybrid``) on ``url``."""
    make = broker.new_hybrid_client if mode == "hybrid" else broker.new_redis_client
    return make(app, url, strategy=strategy, config=config)


def open_append(path: str) -> int:
    """A descriptor that appends: each os.write of a short line lands whole at the end."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def append_line(fd: int, line: str) -> None:
    data = line.encode()
    if len(data) >= select.PIPE_BUF:
        raise ValueError(f"ledger line of {len(data)} bytes could interleave: {line!r}")
    written = os.write(fd, data)
    if written != len(data):
        raise OSError(f"short write to the ledger: {written} of {len(data)} bytes")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--app", required=True)
    parser.add_argument("--member", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--max-jobs", type=int, default=10)
    parser.add_argument("--strategy", default="round_robin")
    parser.add_argument("--slow", type=float, default=0.0, help="seconds each handler sleeps")
    parser.add_argument("--lease", type=float, default=LEASE)
    parser.add_argument("--ttl", type=float, default=HEARTBEAT_TTL, help="heartbeat TTL (s)")
    parser.add_argument("--grace", type=float, default=10.0, help="grace period on stop")
    parser.add_argument("--started", default=None, help="file recording handler starts")
    parser.add_argument("--mode", choices=MODES, default="redis")
    return parser.parse_args(argv)


def config_of(args: argparse.Namespace) -> broker.Config:
    return broker.Config(
        prefix=args.prefix,
        heartbeat_ttl=args.ttl,
        heartbeat_interval=HEARTBEAT_INTERVAL,
        cleanup_interval=CLEANUP_INTERVAL,
        lease=args.lease,
        grace_period=args.grace,
        max_jobs=args.max_jobs,
        retry_backoff=0.05,
        retry_backoff_max=0.5,
    )


async def run(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pid, member, slow = os.getpid(), args.member, args.slow
    ledger = open_append(args.ledger)
    started = open_append(args.started) if args.started else None
    client = new_client(args.mode, args.app, args.url, args.strategy, config_of(args))
    try:
        sub = client.subscriber(member_id=member, max_jobs=args.max_jobs)

        async def handle(msg: broker.Message[Any]) -> None:
            line = f"{msg.id} {msg.attempt} {pid} {member}\n"
            if started is not None:
                append_line(started, line)
            if slow > 0:
                await asyncio.sleep(slow)
            append_line(ledger, line)

        sub.add_handler(TOPIC, handle)
        await sub.start()
        print("ready", flush=True)
        await stop.wait()
        await client.aclose()
        print(f"stopped processed={sub.processed} lost={sub.lost} failed={sub.failed}", flush=True)
    finally:
        await client.aclose()
        os.close(ledger)
        if started is not None:
            os.close(started)
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
