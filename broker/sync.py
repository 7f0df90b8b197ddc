"""Producing from code that is not async (a Flask or Django view, a script, a thread).

    producer = broker.SyncProducer.from_env()
    producer.enqueue("NEW_ORDER", Order(id="ORD-12345"))
    info = producer.request("GET_USER_INFO", UserQuery(id=99), timeout=5.0, returns=UserInfo)
    producer.close()

One event loop runs in a daemon thread for the producer's life; every call hands the
`App`'s coroutine to that loop and blocks until it finishes. The async code is the only
code: nothing is duplicated, and any number of threads may call one producer at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Self, TypeVar, overload

from broker.app import App
from broker.client import Client
from broker.config import Config
from broker.errors import ClientClosed
from broker.factory import client_from_env, new_client

__all__ = ["SyncProducer"]

T = TypeVar("T")
R = TypeVar("R")


class SyncProducer:
    """Blocking `publish`, `enqueue`, `broadcast` and `request` over an `App`.

    Args:
        client_factory: builds the client; called once, inside the producer's loop thread.
    """

    def __init__(self, client_factory: Callable[[], Client]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="broker-sync-producer", daemon=True
        )
        self._thread.start()
        self._closed = False
        try:
            self._app = self._run(self._open(client_factory))
        except BaseException:
            self._shutdown_loop()
            raise

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """A producer configured by environment variables (see `broker.Config.from_env`)."""
        return cls(lambda: client_from_env(environ))

    @classmethod
    def from_config(cls, config: Config) -> Self:
        """A producer for ``config`` (its ``mode`` picks the backend)."""
        return cls(lambda: new_client(config))

    @staticmethod
    async def _open(client_factory: Callable[[], Client]) -> App:
        return App(client_factory(), owns_client=True)

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("SyncProducer was called from its own loop; await the App instead")
        if self._closed:
            coroutine.close()
            raise ClientClosed("this producer is closed; create a new one")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result()

    @property
    def app(self) -> App:
        """The async App behind this producer (use it only from the producer's loop)."""
        return self._app

    def publish(
        self, topic: str, payload: object, *, key: str | None = None, **options: Any
    ) -> str:
        """`Client.publish`, blocking; returns the message id."""
        return self._run(self._app.client.publish(topic, payload, key=key, **options))

    def enqueue(self, name: str, payload: object, **options: Any) -> str:
        """`App.enqueue`, blocking; returns the task's message id."""
        return self._run(self._app.enqueue(name, payload, **options))

    def enqueue_many(self, name: str, payloads: Sequence[object], **options: Any) -> list[str]:
        """`App.enqueue_many`, blocking; returns the ids."""
        return self._run(self._app.enqueue_many(name, payloads, **options))

    def broadcast(self, name: str, payload: object, **options: Any) -> int:
        """`App.broadcast`, blocking; returns how many listening processes got the event."""
        return self._run(self._app.broadcast(name, payload, **options))

    @overload
    def request(
        self, name: str, payload: object, *, timeout: float = ..., returns: type[R], **options: Any
    ) -> R: ...

    @overload
    def request(
        self, name: str, payload: object, *, timeout: float = ..., returns: None = ...,
        **options: Any,
    ) -> Any: ...  # fmt: skip

    def request(
        self, name: str, payload: object, *, timeout: float = 5.0, returns: Any = None,
        **options: Any,
    ) -> Any:  # fmt: skip
        """`App.request`, blocking: the reply, or `RemoteError` / `RequestTimeout`."""
        return self._run(
            self._app.request(name, payload, timeout=timeout, returns=returns, **options)
        )

    def close(self) -> None:
        """Close the client and stop the loop thread (requests in progress fail)."""
        if self._closed:
            return
        try:
            self._run(self._app.stop())
        finally:
            self._closed = True
            self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
