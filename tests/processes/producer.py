"""A producer process: publishes messages on topic "jobs" and writes their ids to a file.

    python -m tests.processes.producer --url URL --prefix P --app APP --count N --ids PATH
        [--batch B | --one-by-one] [--strategy S] [--wait-go]

``--batch`` publishes with ``publish_many`` in batches of B; ``--one-by-one`` uses sequential
``publish`` calls. With ``--wait-go`` it prints ``ready`` once connected and waits for a line
on stdin before publishing (so several producers start together). The ids go to ``--ids``
one per line; at the end it prints ``published N FIRST LAST`` (wall-clock times of the first
and last publish) and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import broker

TOPIC = "jobs"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--app", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--ids", required=True)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--one-by-one", action="store_true")
    parser.add_argument("--strategy", default="round_robin")
    parser.add_argument("--wait-go", action="store_true")
    return parser.parse_args(argv)


async def publish(client: broker.Client, args: argparse.Namespace) -> list[str]:
    if args.one_by_one:
        return [await client.publish(TOPIC, index) for index in range(args.count)]
    ids: list[str] = []
    for start in range(0, args.count, args.batch):
        payloads = list(range(start, min(start + args.batch, args.count)))
        ids += await client.publish_many(TOPIC, payloads)
    return ids


async def run(args: argparse.Namespace) -> tuple[list[str], float, float]:
    """Publish; the ids and the wall-clock times of the first and last publish."""
    config = broker.Config(prefix=args.prefix)
    async with broker.new_redis_client(
        args.app, args.url, strategy=args.strategy, config=config
    ) as client:
        await client.queue.groups(TOPIC)  # connect before the start line
        if args.wait_go:
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
        first = time.time()
        ids = await publish(client, args)
        return ids, first, time.time()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ids, first, last = asyncio.run(run(args))
    Path(args.ids).write_text("".join(f"{i}\n" for i in ids))
    print(f"published {len(ids)} {first:.6f} {last:.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
