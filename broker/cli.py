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
import inspect
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from broker import __version__
from broker.app import TASK_GROUP, App
from broker.client import Client
from broker.config import Config
from broker.errors import BrokerError
from broker.factory import new_client

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
    """Import ``module:attribute`` (from the current directory too; the module may also be a
    ``path/to/file.py``) and return the App, calling the attribute if it is an app factory.

    Raises:
        BrokerError: the target is malformed, cannot be imported or is not an App.
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise BrokerError(f"{target!r} is not module:attribute, e.g. myservice.worker:app")
    module_name = _importable(module_name)
    try:
        module = importlib.import_module(module_name)
    except (ImportError, TypeError) as exc:  # TypeError: a relative name such as ../x
        raise BrokerError(f"cannot import {module_name!r}: {exc}") from exc
    found: Any = module
    for part in attribute.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise BrokerError(f"{module_name!r} has no attribute {attribute!r}")
    if inspect.iscoroutinefunction(found):
        raise BrokerError(f"{target} is an async function; give an App or a function returning one")
    if callable(found) and not isinstance(found, App):
        found = found()  # an app factory
    if not isinstance(found, App):
        raise BrokerError(f"{target} is a {type(found).__name__}, not a broker.App")
    return found


def _importable(module: str) -> str:
    """The module name to import, with its directory on ``sys.path`` (a ``.py`` path's own)."""
    directory = os.getcwd()
    if module.endswith(".py"):
        path = Path(module)
        if not path.is_file():
            raise BrokerError(f"{module}: no such file")
        directory, module = str(path.resolve().parent), path.stem
    if directory not in sys.path:
        sys.path.insert(0, directory)
    return module


_LOCAL = "(in this process only: set BROKER_MODE=redis for other processes to reach it)"


def _banner(app: App, target: str) -> str:
    info = app.info()
    rows = [
        ("app", f"{info.app} (group {info.group}) from {target}"),
        ("mode", f"{info.mode}  {info.config['redis_url'] if info.mode != 'memory' else _LOCAL}"),
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
        app.max_jobs = args.max_jobs
    asyncio.run(_run_worker(app, args.app))
    return 0


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "") -> list[str]:
    """Lines of a table whose columns fit their longest cell: text left-aligned, numbers right."""
    cells = [[str(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(header)]
    numeric = [
        bool(rows) and all(isinstance(row[i], int | float) for row in rows)
        for i in range(len(header))
    ]
    lines = []
    for row in [list(header), *cells]:
        line = "  ".join(
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric, strict=True)
        )
        lines.append(indent + line.rstrip())
    return lines


def _config(args: argparse.Namespace) -> int:
    settings = Config.from_env().describe().items()
    print("\n".join(_table(("setting", "value"), list(settings))[1:]))
    return 0


def _inspector(command: str) -> Client:
    """A client on the deployment the environment names, which must live outside this process."""
    config = Config.from_env()
    if config.mode == "memory":
        raise BrokerError(
            f"{command}: BROKER_MODE is memory, whose in-process backend another process cannot "
            "inspect; set BROKER_MODE=redis or BROKER_MODE=hybrid (and REDIS_URL) to the "
            "deployment's values"
        )
    return new_client(config)


async def _health() -> int:
    async with _inspector("health") as client:
        health = await client.health()
    rows = [
        (p.name, "ok" if p.ok else "FAILED", f"{p.latency_ms:.2f} ms", p.detail)
        for p in health.components
    ]
    print("\n".join(_table(("component", "state", "latency", "detail"), rows)))
    return 0 if health.ok else 1


async def _stats(args: argparse.Namespace) -> int:
    async with _inspector("stats") as client:
        client.include_group(TASK_GROUP)  # the workers' group, whatever their app names
        stats = await client.stats(all_groups=args.all)
    scope = "every group" if args.all else f"app {stats.app}"
    print(f"{scope}, strategy {stats.strategy}, at {time.ctime(stats.taken_at)}")
    header = ("topic", "group", "queued", "in flight", "delayed", "dead", "processed", "failed")
    groups = [
        (g.topic, g.group, g.queued, g.in_flight, g.delayed, g.dead, g.processed, g.failed)
        + (("no live member",) if g.unattended else ("",))
        for g in stats.groups
    ]
    print("\n".join(_table((*header, ""), groups)))
    print(f"{len(stats.members)} live members")
    if stats.members:
        columns = ("member", "group", "weight", "in flight", "processed", "failed", "topics")
        members = [
            (m.id, m.group, m.weight, m.in_flight, m.processed, m.failed, ",".join(m.topics))
            for m in stats.members
        ]
        print("\n".join(_table(columns, members, indent="  ")))
    return 0


async def _undeclare(args: argparse.Namespace) -> int:
    async with _inspector("undeclare") as client:
        moved = await client.undeclare(args.topic, args.group)
    print(
        f"group {args.group} no longer receives {args.topic}; "
        f"{moved} waiting messages moved to its dead letters"
    )
    return 0


def _positive(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of 1 or more, not {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="broker",
        description="Run broker workers and inspect a deployment.",
        epilog="Settings come from environment variables (BROKER_MODE, REDIS_URL, APP_NAME, ...); "
        "`broker config` shows the effective ones.",
    )
    parser.add_argument("--version", action="version", version=f"broker {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="default INFO",
    )
    parser.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="json: one object per line"
    )
    commands = parser.add_subparsers(dest="command", metavar="command", required=True)
    worker = commands.add_parser("worker", help="run the handlers of an App until stopped")
    worker.add_argument(
        "app",
        help="module:attribute or path/to/file.py:attribute of a broker.App (or of a function "
        "returning one), e.g. shop.worker:app",
    )
    worker.add_argument(
        "--max-jobs", type=_positive, metavar="N", help="handlers running at once (MAX_JOBS)"
    )
    worker.add_argument(
        "--mode", choices=("memory", "redis", "hybrid"), help="BROKER_MODE for App.from_env()"
    )
    worker.set_defaults(run=_worker)
    shown = {
        "config": ("the effective configuration, secrets masked", _config),
        "health": (
            "check the backend and balancer answer, with latency (redis or hybrid mode)",
            lambda _: asyncio.run(_health()),
        ),
    }
    for name, (text, run) in shown.items():
        commands.add_parser(name, help=text, description=text).set_defaults(run=run)
    text = "queues per topic and group, and live members (redis or hybrid mode)"
    stats = commands.add_parser("stats", help=text, description=text)
    stats.add_argument("--all", action="store_true", help="every group, not only this app's")
    stats.set_defaults(run=lambda a: asyncio.run(_stats(a)))
    text = (
        "stop giving TOPIC to GROUP now (e.g. a retired service); what waits for it moves to "
        "its dead letters (redis or hybrid mode)"
    )
    undeclare = commands.add_parser("undeclare", help=text, description=text)
    undeclare.add_argument("topic", help="e.g. orders.created")
    undeclare.add_argument("group", help="the consumer group, e.g. an old APP_NAME")
    undeclare.set_defaults(run=lambda a: asyncio.run(_undeclare(a)))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``broker`` console script."""
    args = _parser().parse_args(argv)
    try:
        code = int(args.run(args))
        sys.stdout.flush()  # here, so that a closed pipe is reported below, not at exit
    except BrokerError as exc:
        print(f"broker: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`broker stats | head -1`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a process killed by SIGPIPE
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
