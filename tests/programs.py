"""Python programs run as child processes: a run to completion, and a worker stopped by SIGTERM.

Used by the tests that run README.md's blocks and the files in examples/ as a user would.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Self

import redis

RUN_TIMEOUT = 60.0  # one program, start to exit
READY_TIMEOUT = 30.0  # a worker, start to "app ... started"
STOP_TIMEOUT = 30.0  # a worker, SIGTERM to exit
# App.start() logs this line once the app listens for its events and has joined its group.
READY = re.compile(r"app \S+ started")
# Variables of broker.Config.from_env (and the ones it composes): the parent's are not inherited.
CONFIG_VARIABLES = re.compile(
    r"(BROKER_|QUEUE_|REDIS_|BALANCE|HEARTBEAT_|CLEANUP_|LEASE_|MAX_|RETRY_|GRACE_|GROUP)"
    r"|APP_NAME$|CONTENT_TYPE$"
)


def program_env(**settings: str) -> dict[str, str]:
    """This process's environment without broker settings, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not CONFIG_VARIABLES.match(k)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(settings)
    return env


async def run_program(
    args: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float = RUN_TIMEOUT
) -> tuple[int, str]:
    """Run ``python *args`` in ``cwd`` until it exits; its exit code and output (stdout and
    stderr interleaved). A program still running after ``timeout`` is killed and reported."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=cwd,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        text = out.decode(errors="replace")
        raise AssertionError(f"{' '.join(args)} still ran after {timeout}s:\n{text}") from None
    return proc.returncode or 0, out.decode(errors="replace")


class Worker:
    """A program that serves until SIGTERM (``app.run()``, ``broker worker``), in the background.

    Start it with `serve`; `stop` sends SIGTERM and returns its exit code.
    """

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self.lines: list[str] = []
        self._ready = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, args: Sequence[str], cwd: Path, env: Mapping[str, str]) -> Self:
        """Start ``python *args`` in ``cwd`` and wait until its app has started.

        Raises:
            AssertionError: it exited, or did not start within READY_TIMEOUT.
        """
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=cwd,
            env=dict(env),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        worker = cls(proc, " ".join(args))
        exited = asyncio.create_task(proc.wait())
        ready = asyncio.create_task(worker._ready.wait())
        await asyncio.wait({exited, ready}, timeout=READY_TIMEOUT, return_when="FIRST_COMPLETED")
        exited.cancel()
        if not ready.done():
            ready.cancel()
            await worker.kill()
            raise AssertionError(f"{worker.name} did not start:\n{worker.output}")
        return worker

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            if READY.search(line):
                self._ready.set()

    @property
    def output(self) -> str:
        """Everything it printed so far."""
        return "".join(self.lines)

    async def stop(self) -> int:
        """SIGTERM, then its exit code once it exited (killed after STOP_TIMEOUT)."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            await self.kill()
            raise AssertionError(f"{self.name} ignored SIGTERM:\n{self.output}") from None
        await self._reader
        return self.proc.returncode or 0

    async def kill(self) -> None:
        """SIGKILL if it still runs, and wait for it."""
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        await self._reader


@asynccontextmanager
async def serve(args: Sequence[str], cwd: Path, env: Mapping[str, str]) -> AsyncIterator[Worker]:
    """A started `Worker` (see `Worker.start`), killed on the way out if it still runs."""
    worker = await Worker.start(args, cwd, env)
    try:
        yield worker
    finally:
        await worker.kill()


def drop_prefix(url: str, prefix: str) -> int:
    """Delete every key under ``prefix:`` (SCAN + DEL, never KEYS); returns how many."""
    deleted = 0
    with redis.Redis.from_url(url) as client:
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            deleted += int(client.delete(key))
    return deleted


__all__ = ["Worker", "drop_prefix", "program_env", "run_program", "serve"]
