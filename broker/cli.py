"""The ``broker`` command: run a worker, show the configuration, check health, show stats.

broker worker shop.tasks:app --max-jobs 20 --mode redis
broker config
broker health
broker stats
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from broker.app import App
from broker.config import Config
from broker.errors import BrokerError
from broker.factory import client_from_env

__all__ = ["main"]

log = logging.getLogger("broker")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, pid, and the exception."""

    _encode = msgspec.json.Encoder().encode

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self._encode(entry).decode()


def _setup_logging(level: str, style: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if style == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s pid=%(process)d %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def load_app(target: str) -> App:
    """Import ``module:attribute`` (from the current directory too) and return the App.

    Raises:
        BrokerError: the target is malformed, cannot be imported or is not an App.
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise BrokerError(f"{target!r} is not module:attribute, e.g. myservice.worker:app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BrokerError(f"cannot import {module_name!r}: {exc}") from exc
    found: Any = module
    for part in attribute.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise BrokerError(f"{module_name!r} has no attribute {attribute!r}")
    if callable(found) and not isinstance(found, App):
        found = found()  # an app factory
    if not isinstance(found, App):
        raise BrokerError(f"{target} is a {type(found).__name__}, not a broker.App")
    return found


def _banner(app: App, target: str) -> str:
    info = app.info()
    rows = [
        ("app", f"{info.app} (group {info.group}) from {target}"),
        ("mode", info.mode + ("" if info.mode == "memory" else f"  {info.config['redis_url']}")),
        ("strategy", info.strategy),
        ("max jobs", str(info.max_jobs)),
        ("tasks", ", ".join(info.tasks) or "-"),
        ("requests", ", ".join(info.requests) or "-"),
        ("events", ", ".join(info.events) or "-"),
    ]
    lines = ["broker worker"] + [f"  {name:<9} {value}" for name, value in rows]
    lines.append(f"  pid {os.getpid()}; Ctrl-C or SIGTERM drains and stops")
    return "\n".join(lines)


async def _run_worker(app: App, target: str) -> None:
    print(_banner(app, target), file=sys.stderr, flush=True)
    await app.run()


def _worker(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level, args.log_format)
    if args.mode:
        os.environ["BROKER_MODE"] = args.mode  # read by App.from_env() at import time
    if args.max_jobs is not None:
        os.environ["MAX_JOBS"] = str(args.max_jobs)
    app = load_app(args.app)
    mode = app.client.config.mode
    if args.mode and mode != args.mode:
        raise BrokerError(
            f"{args.app} built its client in code for mode {mode!r}; use App.from_env() "
            f"to let --mode choose, or drop --mode"
        )
    if args.max_jobs is not None:
        if args.max_jobs < 1:
            raise BrokerError("--max-jobs is 1 or more")
        app.max_jobs = args.max_jobs
    asyncio.run(_run_worker(app, args.app))
    return 0


def _config(args: argparse.Namespace) -> int:
    for name, value in Config.from_env().describe().items():
        print(f"{name:<20} {value}")
    return 0


async def _health() -> int:
    async with client_from_env() as client:
        health = await client.health()
    for part in health.components:
        state = "ok" if part.ok else "FAILED"
        print(f"{part.name:<10} {state:<7} {part.latency_ms:8.2f} ms  {part.detail}")
    return 0 if health.ok else 1


async def _stats() -> int:
    async with client_from_env() as client:
        stats = await client.stats()
    print(f"app {stats.app}, strategy {stats.strategy}, at {time.ctime(stats.taken_at)}")
    header = ("topic", "group", "queued", "in flight", "delayed", "dead", "processed", "failed")
    print("  ".join(f"{h:>10}" for h in header))
    for g in stats.groups:
        row = (g.topic, g.group, g.queued, g.in_flight, g.delayed, g.dead, g.processed, g.failed)
        print("  ".join(f"{v!s:>10}" for v in row))
    print(f"{len(stats.members)} live members")
    for m in stats.members:
        print(f"  {m.id}  group={m.group} weight={m.weight} in_flight={m.in_flight} "
              f"processed={m.processed} failed={m.failed} topics={','.join(m.topics)}")  # fmt: skip
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="broker", description="Run broker workers and inspect a deployment."
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="run the handlers of an App until stopped")
    worker.add_argument("app", help="module:attribute of a broker.App, e.g. shop.worker:app")
    worker.add_argument("--max-jobs", type=int, help="handlers running at once (MAX_JOBS)")
    worker.add_argument("--mode", choices=("memory", "redis", "hybrid"), help="BROKER_MODE")
    worker.set_defaults(run=_worker)
    commands.add_parser("config", help="print the configuration from the environment").set_defaults(
        run=_config
    )
    commands.add_parser("health", help="check the backend answers").set_defaults(
        run=lambda _: asyncio.run(_health())
    )
    commands.add_parser("stats", help="queues and members of the app").set_defaults(
        run=lambda _: asyncio.run(_stats())
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``broker`` console script."""
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except BrokerError as exc:
        print(f"broker: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
