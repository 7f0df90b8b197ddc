"""Throwaway redis-server processes (single node and 3-master cluster) for tests.

Everything binds to 127.0.0.1 only; every process and temp dir is removed on close.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

HOST = "127.0.0.1"
CLUSTER_BUS_OFFSET = 10000
MAX_CLUSTER_PORT = 55535  # cluster ports stay below this so port + 10000 fits
START_TIMEOUT = 10.0
CLUSTER_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

Reply = bytes | int | None | list["Reply"]

# Safety net: processes still alive when the interpreter exits get SIGKILLed.
_LIVE: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        _LIVE.discard(proc)


class ReplyError(Exception):
    """An error reply (``-ERR ...``) from redis."""


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def free_port(*, cluster: bool = False, exclude: Sequence[int] = ()) -> int:
    """A free loopback TCP port; with ``cluster`` its bus port (+10000) is free too."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if not cluster:
            if port not in exclude:
                return port
            continue
        bus = port + CLUSTER_BUS_OFFSET
        if port < MAX_CLUSTER_PORT and {port, bus}.isdisjoint(exclude) and _port_free(bus):
            return port
    raise RuntimeError("no free loopback port found")


def _read_reply(stream: BinaryIO) -> Reply:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed mid-reply")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body
    if kind == b"-":
        raise ReplyError(body.decode(errors="replace"))
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        return None if size < 0 else bytes(stream.read(size + 2)[:-2])
    if kind == b"*":
        count = int(body)
        return None if count < 0 else [_read_reply(stream) for _ in range(count)]
    raise ConnectionError(f"unexpected reply {line!r}")


def command(port: int, *args: str | int, timeout: float = 1.0) -> Reply:
    """Send one command over a fresh raw connection and return the parsed reply."""
    payload = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = str(arg).encode()
        payload.append(b"$%d\r\n%b\r\n" % (len(data), data))
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(b"".join(payload))
        with sock.makefile("rb") as stream:
            return _read_reply(stream)


def ping_port(port: int, timeout: float = 0.5) -> bool:
    """True if a redis on ``port`` answers PING with PONG (not LOADING)."""
    try:
        return command(port, "PING", timeout=timeout) == b"PONG"
    except (OSError, ReplyError):
        return False


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no log>"
    return "\n".join(text.splitlines()[-lines:])


class RedisServer:
    """One redis-server process on a free loopback port with its own temp dir."""

    def __init__(
        self,
        *,
        appendonly: bool = False,
        extra_args: Sequence[str] = (),
        port: int | None = None,
    ) -> None:
        self._fixed_port = port is not None
        self._port = port if port is not None else free_port()
        self._appendonly = appendonly
        self._extra_args = list(extra_args)
        self._dir = Path(tempfile.mkdtemp(prefix="redis-test-"))
        self._log = self._dir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._closed = False

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self._port}/0"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("redis-server is not running")
        return self._proc.pid

    @property
    def dir(self) -> Path:
        return self._dir

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _argv(self) -> list[str]:
        argv = [
            "redis-server",
            "--port", str(self._port),
            "--bind", HOST,
            "--save", "",
            "--dir", str(self._dir),
            "--daemonize", "no",
            "--appendonly", "yes" if self._appendonly else "no",
        ]  # fmt: skip
        if self._appendonly:
            argv += ["--appendfsync", "always"]
        return argv + self._extra_args

    def _spawn(self) -> None:
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                self._argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        _LIVE.add(self._proc)

    def _await_ready(self) -> bool:
        """Poll PING; False if the process died on a port clash, raise on other failure."""
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._reap()
                tail = _log_tail(self._log)
                if "Address already in use" in tail and not self._fixed_port:
                    return False
                raise RuntimeError(f"redis-server on port {self._port} exited:\n{tail}")
            if ping_port(self._port):
                return True
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(
            f"redis-server on port {self._port} not ready after {START_TIMEOUT}s:\n"
            + _log_tail(self._log)
        )

    def start(self) -> Self:
        """Spawn redis-server and wait until it answers PING."""
        if self._closed:
            raise RuntimeError("server is closed")
        if self.running:
            return self
        for _ in range(5):
            self._spawn()
            if self._await_ready():
                # Only the first start may move; restarts must reuse port and dir.
                self._fixed_port = True
                return self
            self._port = free_port()
        raise RuntimeError("could not bind redis-server to a free port")

    def _reap(self, timeout: float = STOP_TIMEOUT) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            proc.wait(timeout=timeout)
        finally:
            if proc.returncode is not None:
                _LIVE.discard(proc)
                self._proc = None

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it does not exit in time."""
        if self._proc is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self._reap()
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL and wait (no shutdown, no final fsync)."""
        if self._proc is None:
            return
        self._signal(signal.SIGKILL)
        self._reap()

    def restart(self) -> Self:
        """Stop if running, then start on the same port and dir (AOF is reloaded)."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the process and delete the temp dir."""
        if self._closed:
            return
        try:
            self.stop()
        finally:
            self._closed = True
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _cluster_ok(port: int) -> bool:
    try:
        info = command(port, "CLUSTER", "INFO")
    except (OSError, ReplyError):
        return False
    return isinstance(info, bytes) and b"cluster_state:ok" in info


class RedisCluster:
    """Three master redis-server nodes in cluster mode, slots spread over all of them."""

    def __init__(self, masters: int = 3) -> None:
        self._masters = masters
        self._nodes: list[RedisServer] = []
        self._ports: list[int] = []

    @property
    def ports(self) -> list[int]:
        """Node ports (kept after stop() so callers can check they are gone)."""
        return list(self._ports)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.ports[0]}/0"

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [(HOST, port) for port in self.ports]

    @property
    def nodes(self) -> list[RedisServer]:
        return list(self._nodes)

    def start(self) -> Self:
        """Start the nodes, create the cluster and wait for cluster_state:ok everywhere."""
        if self._nodes:
            return self
        try:
            ports: list[int] = []
            for _ in range(self._masters):
                taken = ports + [p + CLUSTER_BUS_OFFSET for p in ports]
                ports.append(free_port(cluster=True, exclude=taken))
            self._ports = ports
            for port in ports:
                node = RedisServer(
                    port=port,
                    extra_args=[
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", f"nodes-{port}.conf",
                        "--cluster-node-timeout", "2000",
                    ],
                )  # fmt: skip
                self._nodes.append(node)
                node.start()
            self._create()
            self._await_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        argv = ["redis-cli", "--cluster", "create"]
        argv += [f"{HOST}:{port}" for port in self.ports]
        argv += ["--cluster-replicas", "0", "--cluster-yes"]
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=CLUSTER_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            out = (result.stdout + result.stderr).decode(errors="replace")
            raise RuntimeError(f"redis-cli --cluster create failed:\n{out}")

    def _await_ok(self) -> None:
        deadline = time.monotonic() + CLUSTER_TIMEOUT
        while time.monotonic() < deadline:
            if all(_cluster_ok(port) for port in self.ports):
                return
            time.sleep(0.05)
        raise RuntimeError(f"cluster {self.ports} not ok after {CLUSTER_TIMEOUT}s")

    def slots(self) -> dict[int, list[tuple[int, int]]]:
        """Port -> slot ranges owned by that master, from CLUSTER SLOTS."""
        owners: dict[int, list[tuple[int, int]]] = {port: [] for port in self.ports}
        reply = command(self.ports[0], "CLUSTER", "SLOTS")
        assert isinstance(reply, list)
        for entry in reply:
            assert isinstance(entry, list)
            first, last, master = entry[0], entry[1], entry[2]
            assert isinstance(master, list)
            port = master[1]
            assert isinstance(first, int)
            assert isinstance(last, int)
            assert isinstance(port, int)
            owners.setdefault(port, []).append((first, last))
        return owners

    def stop(self) -> None:
        """Stop every node and delete their temp dirs."""
        nodes, self._nodes = self._nodes, []
        errors: list[BaseException] = []
        for node in nodes:
            try:
                node.close()
            except BaseException as exc:  # keep tearing down the rest
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def redis_available() -> bool:
    """True if the redis-server binary is on PATH."""
    return shutil.which("redis-server") is not None


def require_redis_server() -> None:
    """Skip the test without redis-server; under CI (CI=true) fail instead."""
    if redis_available():
        return
    if os.environ.get("CI", "").lower() == "true":
        raise RuntimeError("redis-server is required in CI")
    pytest.skip("redis-server binary not found on PATH")


def shared_redis_url() -> str:
    """URL of the long-running shared Redis (TEST_REDIS_URL or localhost:6379)."""
    return os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def shared_redis_ok(url: str | None = None) -> bool:
    """True if the Redis at ``url`` (default: shared_redis_url()) answers PING quickly."""
    try:
        with redis.Redis.from_url(
            url or shared_redis_url(),
            socket_connect_timeout=0.5,
            socket_timeout=0.5,
            retry=Retry(NoBackoff(), 0),
        ) as client:
            return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
