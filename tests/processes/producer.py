"""A producer process: publishes messages on topic "jobs" and writes their ids to a file.

    python -m tests.processes.producer --url URL --prefix P --app APP --count N --ids PATH
        [--batch B | --one-by-one] [--strategy S] [--wait-go] [--mode redis|hybrid]
        [--pause S] [--keep-going]

``--batch`` publishes with ``publish_many`` in batches of B; ``--one-by-one`` uses sequential
``publish`` calls. With ``--wait-go`` it prints ``ready`` once connected and waits for a line
on stdin before publishing (so several producers start together). The ids go to ``--ids``
one per line, appended as soon as their publish call returned (so the file never holds an id
whose publish did not return, whatever happens to the process later); at the end it prints
``published N FIRST LAST`` (wall-clock times of the first and last publish), then
``summary JSON`` (errors by type, the longest call in seconds) and exits 0.

``--pause`` sleeps between calls. With ``--keep-going`` a call that raises a `broker.errors`
error is counted and the producer goes on with the next one (the ids of a failed call are
never recorded: a publish that did not return promises nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from typing import IO

import broker
from tests.processes.worker import MODES, new_client

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
    parser.add_argument("--mode", choices=MODES, default="redis")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between calls")
    parser.add_argument("--keep-going", action="store_true", help="go on after an error")
    return parser.parse_args(argv)


class Publisher:
    """Publishes in calls of one batch (or one message), appending each call's ids once it
    returned; counts the errors of failed calls and times the longest call."""

    def __init__(self, client: broker.Client, args: argparse.Namespace, out: IO[str]) -> None:
        self.client = client
        self.args = args
        self.out = out
        self.count = 0
        self.errors: Counter[str] = Counter()
        self.longest = 0.0

    async def call(self, payloads: list[int]) -> None:
        started = time.monotonic()
        try:
            if self.args.one_by_one:
                ids = [await self.client.publish(TOPIC, payloads[0])]
            else:
                ids = await self.client.publish_many(TOPIC, payloads)
        except broker.BrokerError as exc:
            if not self.args.keep_going:
                raise
            self.errors[type(exc).__name__] += 1
            return
        finally:
            self.longest = max(self.longest, time.monotonic() - started)
        self.out.write("".join(f"{i}\n" for i in ids))
        self.out.flush()
        self.count += len(ids)

    async def run(self) -> None:
        size = 1 if self.args.one_by_one else self.args.batch
        for start in range(0, self.args.count, size):
            await self.call(list(range(start, min(start + size, self.args.count))))
            if self.args.pause > 0:
                await asyncio.sleep(self.args.pause)


async def run(args: argparse.Namespace, out: IO[str]) -> tuple[Publisher, float, float]:
    """Publish; the publisher and the wall-clock times of the first and last publish."""
    config = broker.Config(prefix=args.prefix)
    async with new_client(args.mode, args.app, args.url, args.strategy, config) as client:
        await client.queue.groups(TOPIC)  # connect before the start line
        if args.wait_go:
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
        first = time.time()
        publisher = Publisher(client, args, out)
        await publisher.run()
        return publisher, first, time.time()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with open(args.ids, "a") as out:
        publisher, first, last = asyncio.run(run(args, out))
    print(f"published {publisher.count} {first:.6f} {last:.6f}", flush=True)
    summary = {"errors": dict(publisher.errors), "longest": publisher.longest}
    print(f"summary {json.dumps(summary)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
