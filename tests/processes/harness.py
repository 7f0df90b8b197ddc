"""Helpers for the multi-process tests: child processes, the ledger, one Redis per test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import IO, Any, NamedTuple

import broker
from broker.backends.redis import connect
from tests.processes.worker import new_client

ROOT = Path(__file__).resolve().parents[2]
APP = "procs"
TOPIC = "jobs"
READY_TIMEOUT = 20.0
EXIT_TIMEOUT = 20.0


def child_env() -> dict[str, str]:
    """The environment of a child: this one, with the project root on PYTHONPATH."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + path if path else "")
    return env


class Child:
    """One ``python -m tests.processes.<module>`` process: stdout piped, stderr to a log."""

    def __init__(
        self,
        name: str,
        module: str,
        args: list[str],
        log: Path,
        *,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    module if "." in module else f"tests.processes.{module}",
                    *args,
                ],
                cwd=ROOT,
                env={**child_env(), **(env or {})},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
            )
        self._buffer = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def describe(self) -> str:
        """Name, pid, exit status and the end of its log, for failure messages."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            text = ""
        tail = "\n".join(text.splitlines()[-30:])
        return f"{self.name} (pid {self.pid}, exit {self.proc.poll()}):\n{tail}"

    def _stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def read_line(self, timeout: float = READY_TIMEOUT) -> str:
        """The next line it prints, waiting at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        fd = self._stdout().fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no output line in {timeout}s from {self.describe()}")
            readable, _, _ = select.select([fd], [], [], min(left, 0.1))
            if readable:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise AssertionError(f"stdout closed early: {self.describe()}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def expect(self, text: str, timeout: float = READY_TIMEOUT) -> str:
        """Wait for the next line and check it starts with ``text``."""
        line = self.read_line(timeout)
        assert line.startswith(text), f"expected {text!r}, got {line!r} from {self.describe()}"
        return line

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = EXIT_TIMEOUT) -> int:
        """Wait for the exit (raises AssertionError with the log on timeout)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout}s: {self.describe()}") from None

    def assert_exits_cleanly(self, timeout: float = EXIT_TIMEOUT) -> None:
        code = self.wait(timeout)
        assert code == 0, f"exit {code}: {self.describe()}"

    def close(self) -> None:
        """SIGKILL if still running (or stopped), reap, close the pipes."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=EXIT_TIMEOUT)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


class Line(NamedTuple):
    """One ledger line: a handler run that finished (or, in a started file, that began)."""

    id: str
    attempt: int
    pid: int
    member: str


class Ledger:
    """Reads a ledger file incrementally; a trailing line without newline waits for more."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[Line] = []
        self._offset = 0
        self._partial = b""

    def refresh(self) -> list[Line]:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return self.lines
        self._offset += len(data)
        data = self._partial + data
        complete, _, self._partial = data.rpartition(b"\n")
        for raw in complete.splitlines() if complete else []:
            fields = raw.decode().split(" ")
            assert len(fields) == 4, f"malformed ledger line {raw!r}"
            self.lines.append(Line(fields[0], int(fields[1]), int(fields[2]), fields[3]))
        return self.lines

    def counts(self) -> Counter[str]:
        return Counter(line.id for line in self.refresh())

    def ids(self) -> set[str]:
        return {line.id for line in self.refresh()}

    def of(self, message_id: str) -> list[Line]:
        return [line for line in self.refresh() if line.id == message_id]


def read_ids(paths: Iterable[Path]) -> list[str]:
    return [i for path in paths for i in path.read_text().split()]


async def until(
    check: Callable[[], bool | Awaitable[bool]], timeout: float, what: str, poll: float = 0.02
) -> float:
    """Poll ``check`` until true; returns the seconds it took, fails after ``timeout``."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return loop.time() - started
        if loop.time() - started > timeout:
            raise AssertionError(f"not reached in {timeout}s: {what}")
        await asyncio.sleep(poll)


class Site:
    """One test's Redis URL, key prefix, temp dir, mode (redis or hybrid) and child processes.

    ``close`` kills every child still running, then deletes the prefix's keys (SCAN, never
    KEYS) when ``drop_keys`` is set.
    """

    def __init__(
        self, url: str, prefix: str, tmp: Path, *, drop_keys: bool = True, mode: str = "redis"
    ) -> None:
        self.url = url
        self.mode = mode
        self.prefix = prefix
        self.tmp = tmp
        self.drop_keys = drop_keys
        self.children: list[Child] = []
        self.ledger_path = tmp / "ledger"
        self.started_path = tmp / "started"
        self.ledger = Ledger(self.ledger_path)
        self.started = Ledger(self.started_path)
        self._client: broker.Client | None = None
        self._redis: Any = None

    def _common(self) -> list[str]:
        return ["--url", self.url, "--prefix", self.prefix, "--app", APP, "--mode", self.mode]

    def worker(self, member: str, *extra: str, ready: bool = True) -> Child:
        """Start a worker process; by default wait until it prints ``ready``."""
        args = [*self._common(), "--member", member, "--ledger", str(self.ledger_path)]
        args += ["--started", str(self.started_path), *extra]
        child = Child(f"worker {member}", "worker", args, self.tmp / f"{member}.log")
        self.children.append(child)
        if ready:
            child.expect("ready")
        return child

    def producer(self, name: str, count: int, *extra: str) -> tuple[Child, Path]:
        """Start a producer process; returns it and the file it writes its ids to."""
        ids = self.tmp / f"{name}.ids"
        args = [*self._common(), "--count", str(count), "--ids", str(ids), *extra]
        child = Child(f"producer {name}", "producer", args, self.tmp / f"{name}.log")
        self.children.append(child)
        return child, ids

    def client(self) -> broker.Client:
        """The test process's client on the same prefix and app (closed by `close`)."""
        if self._client is None:
            config = broker.Config(prefix=self.prefix)
            self._client = new_client(self.mode, APP, self.url, "round_robin", config)
        return self._client

    def redis(self) -> Any:
        """A plain redis-py asyncio client on the same server (closed by `close`)."""
        if self._redis is None:
            self._redis = connect(self.url)
        return self._redis

    async def processed(self) -> int:
        """The queue's processed counter of topic "jobs" (acks accepted)."""
        stats = await self.client().stats()
        return sum(g.processed for g in stats.groups if g.topic == TOPIC)

    async def close(self) -> None:
        try:
            for child in self.children:
                child.close()
            if self._client is not None:
                await self._client.aclose()
            if self._redis is not None:
                await self._redis.aclose()
        finally:
            if self.drop_keys:
                await drop_prefix(self.url, self.prefix)


async def drop_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` with SCAN (never KEYS, never FLUSHALL)."""
    redis = connect(url)
    try:
        batch: list[bytes] = []
        async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                await redis.delete(*batch)
                batch = []
        if batch:
            await redis.delete(*batch)
    finally:
        await redis.aclose()
