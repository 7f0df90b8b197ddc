"""Redis connections: one pool per client that waits for a free connection, retries with
jittered backoff, and driver errors wrapped into `broker.errors`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Connection, ConnectionPool, Redis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from broker.errors import BackendError, BackendUnavailable, BrokerError

_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _pack
except ImportError:  # pragma: no cover - hiredis comes with the redis extra
    _pack = None

__all__ = ["connect", "translate_errors"]


def connect(url: str, *, pool_size: int = 50, cluster: bool = False) -> Any:
    """A client for ``url`` (``redis://``, ``rediss://``, with user, password and db).

    A full pool makes callers wait instead of failing. Commands are not re-sent after a dropped
    connection: a script whose reply was lost may have run, and running it again would store a
    publish twice or report a lost lease. The error reaches the caller (a publish raises
    `BackendUnavailable`); the next command connects again, and the consume and heartbeat loops
    retry with jittered backoff.
    """
    retry = Retry(NoBackoff(), 0)
    errors: list[type[Exception]] = []
    if cluster:
        # headroom over the limit: the Pub/Sub reader holds a node connection of its own, and
        # a connection being reset after an error is out of the free list for a moment
        client = _WaitingCluster.from_url(
            url, retry=retry, retry_on_error=errors, max_connections=pool_size + 16
        )
        client.limit = asyncio.Semaphore(pool_size)
        return client
    extra: dict[str, Any] = {}
    if _pack is not None and url.startswith("redis://"):
        extra["connection_class"] = _PackedConnection
    pool = _WaitingPool.from_url(
        url,
        **extra,
        max_connections=pool_size,
        retry=retry,
        retry_on_error=errors,
        health_check_interval=30,
    )
    return Redis.from_pool(pool)


class _WaitingPool(ConnectionPool):
    """A pool that waits for a free connection once ``max_connections`` are in use (redis-py's
    plain pool raises instead). One semaphore does it; redis-py's blocking pool costs a
    condition, a lock and a timeout context on every command."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = asyncio.Semaphore(self.max_connections)

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        await self._slots.acquire()
        try:
            return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except BaseException:
            self._slots.release()
            raise

    async def release(self, connection: Any) -> None:
        try:
            await super().release(connection)
        finally:
            self._slots.release()


class _PackedConnection(Connection):
    """A connection that packs commands with hiredis (C) instead of redis-py's Python loop,
    which costs about 20 us for a script call with twenty arguments."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if _pack is None or (isinstance(args[0], str) and " " in args[0]):
            return super().pack_command(*args)
        try:
            return [_pack(args)]
        except TypeError:  # a type hiredis does not take: redis-py raises its own error
            return super().pack_command(*args)


class _WaitingCluster(RedisCluster):
    """A cluster client whose commands wait for a free connection: redis-py's cluster nodes
    raise ``MaxConnectionsError`` once ``max_connections`` are taken. At most ``limit``
    commands run at once, so no node ever needs more connections than it has."""

    limit: asyncio.Semaphore

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> _WaitingCluster:
        client = super().from_url(url, **kwargs)
        assert isinstance(client, cls)
        return client

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.limit:
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)
        return _WaitingPipeline(self, transaction)  # type: ignore[abstract]


class _WaitingPipeline(ClusterPipeline):
    """A pipeline that counts as one command against its cluster client's limit."""

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        limit: asyncio.Semaphore = self.cluster_client.limit  # type: ignore[attr-defined]
        async with limit:
            return await super().execute(raise_on_error, allow_redirections)


class translate_errors:
    """Wrap driver errors raised while doing ``action`` into `broker.errors` types (a class,
    not a generator: it sits on every command's path)."""

    __slots__ = ("action",)

    def __init__(self, action: str) -> None:
        self.action = action

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if not isinstance(exc, (redis_errors.RedisError, OSError)) or isinstance(exc, BrokerError):
            return  # not a driver error, or one an inner step already translated
        action = self.action
        if isinstance(exc, redis_errors.AuthenticationError):
            raise BackendError(
                f"{action}: Redis refused the credentials ({exc}); check the user and password "
                "in the URL (redis://user:password@host:port/db)"
            ) from exc
        if isinstance(exc, (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)):
            raise BackendUnavailable(f"{action}: Redis is unreachable ({exc})") from exc
        raise BackendError(f"{action}: {exc}") from exc
