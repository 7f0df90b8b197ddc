"""The application API: tasks, events and RPC over one client, and a worker that runs them.

    app = broker.App(client, max_jobs=10)      # or broker.App.from_env()

    @app.on_task("NEW_ORDER")
    async def process_order(order: Order) -> None: ...

    await app.run()                             # until SIGINT/SIGTERM, then a graceful drain

Names: a task ``NAME`` is published on topic ``task:NAME``, a request on ``rpc:NAME``, an event
on channel ``event:NAME``; each kind has its own namespace, so a task and an event may share
a name.

Tasks and requests run once per enqueue / request in the whole deployment, whatever the number
of apps handling the name: they go to one consumer group, `TASK_GROUP`, that every app joins
with the names it handles, and the balancer gives each to one live member handling its name.
Events reach every app listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import typing
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Self, TypeVar, overload

import msgspec

from broker.client import Client, Health, Stats
from broker.errors import ClientClosed, HandlerError, InvalidArgument
from broker.events import Listener, send_event
from broker.factory import client_from_env
from broker.handlers import Handler, HandlerFunc
from broker.message import check_name
from broker.rpc import Requester, Responder
from broker.subscriber import Subscriber

__all__ = ["TASK_GROUP", "App", "AppInfo"]

log = logging.getLogger("broker")
F = TypeVar("F", bound=HandlerFunc)
R = TypeVar("R")

TASK_PREFIX = "task:"
REQUEST_PREFIX = "rpc:"
EVENT_PREFIX = "event:"
TASK_GROUP = "broker.tasks"
"""The consumer group of every task and request, shared by all apps under one prefix."""


class AppInfo(msgspec.Struct, frozen=True):
    """What an app runs: shown by the worker's startup banner."""

    app: str
    group: str
    mode: str
    strategy: str
    max_jobs: int
    tasks: tuple[str, ...]
    events: tuple[str, ...]
    requests: tuple[str, ...]
    config: dict[str, str]


class App:
    """Tasks (durable, single delivery, retried), events (broadcast, at-most-once) and RPC
    (request/reply with a timeout) over one `Client`.

    The same object produces (`enqueue`, `broadcast`, `request`) and, once started, consumes:
    its task and request handlers make it one member of the task group, balanced by the
    client's strategy among the members handling each name; its event handlers each listen on
    their channel. A task or request runs once, whatever the number of apps handling its name.

    A task no running worker handles is not dropped: it waits, stored, until a worker with
    ``on_task`` for its name joins (see ``stats()`` for what waits). A request no live worker
    handles fails at once with `NoResponder`.

    Args:
        client: the client to run on; closed with the app only if ``owns_client``.
        max_jobs: handlers running at once in this member (default ``config.max_jobs``).
        group: consumer group for tasks and requests (default `TASK_GROUP`, shared by every
            app); another name keeps a separate set of workers, which only producers using the
            same ``group`` reach.
        weight: this member's share under the ``weighted`` strategy.
        event_buffer: events buffered per listener before the oldest are dropped.
        owns_client: close the client when the app stops (`from_env` sets it).
    """

    def __init__(
        self,
        client: Client,
        *,
        max_jobs: int | None = None,
        group: str | None = None,
        weight: int = 1,
        event_buffer: int = 1024,
        owns_client: bool = False,
    ) -> None:
        if max_jobs is not None and max_jobs < 1:
            raise InvalidArgument("max_jobs", max_jobs, "an integer of 1 or more")
        if event_buffer < 1:
            raise InvalidArgument("event_buffer", event_buffer, "an integer of 1 or more")
        self.client = client
        self.max_jobs = max_jobs or client.config.max_jobs
        self.group = check_name(group or TASK_GROUP, "group")
        client.include_group(self.group)
        self.weight = weight
        self._event_buffer = event_buffer
        self._owns_client = owns_client
        self._tasks: dict[str, HandlerFunc] = {}
        self._requests: dict[str, HandlerFunc] = {}
        self._events: dict[str, HandlerFunc] = {}
        self._returns: dict[str, Any] = {}
        self._requester = Requester(client)
        self._subscriber: Subscriber | None = None
        self._listeners: list[Listener] = []
        self._responders: list[Responder] = []
        self._executor: ThreadPoolExecutor | None = None
        self._started = False
        self._stopped = False

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, max_jobs: int | None = None
    ) -> Self:
        """An app on a client configured by environment variables (`broker.client_from_env`);
        the app owns the client and closes it when it stops."""
        return cls(client_from_env(environ), max_jobs=max_jobs, owns_client=True)

    # -- registration ----------------------------------------------------------------------

    def on_task(self, name: str) -> Callable[[F], F]:
        """Decorator: run the function for each task ``name``; its first parameter's annotation
        (``Order`` or ``Message[Order]``) decides how the payload is decoded and validated."""
        return self._register(self._tasks, name, "task name")

    def on_request(self, name: str) -> Callable[[F], F]:
        """Decorator: answer requests ``name``; the return value is the reply, an exception
        reaches the caller as `RemoteError`."""
        return self._register(self._requests, name, "request name")

    def on_event(self, name: str) -> Callable[[F], F]:
        """Decorator: run the function for every event broadcast on ``name`` while this app
        runs (events sent before it started are not replayed)."""
        return self._register(self._events, name, "event name")

    def _register(self, table: dict[str, HandlerFunc], name: str, what: str) -> Callable[[F], F]:
        check_name(name, what)

        def register(func: F) -> F:
            if self._started:
                raise HandlerError("register handlers before the app starts")
            if name in table:
                raise HandlerError(f"{what} {name!r} already has a handler")
            Handler(name, func)  # checks the signature now, not at the first message
            table[name] = func
            return func

        return register

    # -- producing -------------------------------------------------------------------------

    async def enqueue(
        self,
        name: str,
        payload: object,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        max_attempts: int | None = None,
    ) -> str:
        """Queue task ``name``; one worker handling it runs it, once. Returns its id.

        Raises:
            InvalidTopic, PayloadTooLarge, SerializationError: before anything is stored.
        """
        topic = TASK_PREFIX + check_name(name, "task name")
        return await self.client.publish(
            topic, payload, key=key, headers=headers, max_attempts=max_attempts, group=self.group
        )

    async def enqueue_many(
        self,
        name: str,
        payloads: Sequence[object],
        *,
        keys: Sequence[str | None] | None = None,
        headers: dict[str, str] | None = None,
        max_attempts: int | None = None,
    ) -> list[str]:
        """Queue several tasks ``name`` in one batch; returns their ids."""
        topic = TASK_PREFIX + check_name(name, "task name")
        return await self.client.publish_many(
            topic,
            payloads,
            keys=keys,
            headers=headers,
            max_attempts=max_attempts,
            group=self.group,
        )

    async def broadcast(
        self, name: str, payload: object, *, headers: dict[str, str] | None = None
    ) -> int:
        """Send event ``name`` to every app listening now (fire-and-forget, at-most-once).

        Returns:
            How many listening processes received it (0 if none listens: the event is gone).
        """
        self.client._check_open()
        channel = EVENT_PREFIX + check_name(name, "event name")
        return await send_event(self.client, channel, name, payload, headers)

    @overload
    async def request(
        self,
        name: str,
        payload: object,
        *,
        timeout: float = ...,
        returns: type[R],
        key: str | None = ...,
        headers: dict[str, str] | None = ...,
    ) -> R: ...

    @overload
    async def request(
        self,
        name: str,
        payload: object,
        *,
        timeout: float = ...,
        returns: None = ...,
        key: str | None = ...,
        headers: dict[str, str] | None = ...,
    ) -> Any: ...

    async def request(
        self,
        name: str,
        payload: object,
        *,
        timeout: float = 5.0,
        returns: Any = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Call ``name`` on one worker and wait for its reply.

        Args:
            name: the request name a worker handles with ``on_request``.
            payload: the request's payload.
            timeout: seconds to wait for the reply, from the call.
            returns: decode and validate the reply into this type (default: this app's own
                handler's return annotation, else plain dicts and lists).
            key: routing key for the ``consistent_hash`` strategy.
            headers: string metadata for the handler.

        Raises:
            NoResponder: no live worker handles ``name`` (nothing was stored or run).
            RequestTimeout: no reply in ``timeout`` seconds (the request is then dropped
                unrun if a worker finds it later).
            RemoteError: the handler raised; carries the remote type and message.
        """
        self.client._check_open()
        topic = REQUEST_PREFIX + check_name(name, "request name")
        if returns is None and name in self._requests:
            if name not in self._returns:
                self._returns[name] = _return_type(self._requests[name])
            returns = self._returns[name]
        return await self._requester.request(
            name,
            topic,
            payload,
            group=self.group,
            timeout=timeout,
            returns=returns,
            key=key,
            headers=headers,
        )

    # -- running ---------------------------------------------------------------------------

    def info(self) -> AppInfo:
        """The app's name, mode, strategy, limits and handlers."""
        config = self.client.config
        return AppInfo(
            app=config.app_name,
            group=self.group,
            mode=config.mode,
            strategy=config.strategy,
            max_jobs=self.max_jobs,
            tasks=tuple(self._tasks),
            events=tuple(self._events),
            requests=tuple(self._requests),
            config=config.describe(),
        )

    @property
    def member(self) -> Subscriber | None:
        """This app's member of the group once started with task or request handlers."""
        return self._subscriber

    async def start(self) -> None:
        """Start consuming: listen for events, join the group for tasks and requests."""
        if self._stopped:
            raise ClientClosed("a stopped app cannot start again; create a new one")
        if self._started:
            return
        if not (self._tasks or self._requests or self._events):
            raise HandlerError("register a task, request or event handler before start()")
        self._started = True
        self.client._check_open()
        self._executor = ThreadPoolExecutor(self.max_jobs, thread_name_prefix="broker-app")
        for name, func in self._events.items():
            listener = Listener(
                self.client,
                EVENT_PREFIX + name,
                Handler(name, func),
                buffer=self._event_buffer,
                concurrency=self.max_jobs,
            )
            listener.executor = self._executor
            await listener.start()
            self._listeners.append(listener)
        if self._tasks or self._requests:
            await self._join()
        info = self.info()
        log.info(
            "app %s started (group %s): tasks %s, requests %s, events %s",
            info.app, self.group, info.tasks, info.requests, info.events,
        )  # fmt: skip

    async def _join(self) -> None:
        member = self.client.subscriber(
            group=self.group, weight=self.weight, max_jobs=self.max_jobs
        )
        for name, func in self._tasks.items():
            member.add_handler(TASK_PREFIX + name, func)
        for name, func in self._requests.items():
            responder = Responder(self.client, Handler(name, func), self._executor)
            self._responders.append(responder)
            member.add_handler(REQUEST_PREFIX + name, responder.respond, payload_type=msgspec.Raw)
        self._subscriber = member
        await member.start()

    async def stop(self, grace: float | None = None) -> None:
        """Drain gracefully: stop fetching, let in-flight handlers finish within ``grace``
        seconds (default ``config.grace_period``), release the rest for immediate redelivery,
        leave the group; then close the client if the app owns it."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.client.config.grace_period if grace is None else grace
        if self._subscriber is not None:
            await self._subscriber.stop(grace)
        for listener in self._listeners:
            await listener.stop(grace)
        await self._requester.aclose()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> Self:
        if self._tasks or self._requests or self._events:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def run(self) -> None:
        """Start, run until SIGINT or SIGTERM (or cancellation), then `stop` gracefully.

        After the first signal the default handlers come back, so a second Ctrl-C ends the
        process at once.
        """
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, _on_signal, sig, stopping, loop, installed)
                installed.append(sig)
        try:
            await self.start()
            await stopping.wait()
            config = self.client.config
            log.info("app %s draining (grace %gs)", config.app_name, config.grace_period)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self.stop()
        log.info("app %s stopped", self.client.config.app_name)

    # -- operations ------------------------------------------------------------------------

    async def stats(self, *, all_groups: bool = False) -> Stats:
        """Queue and member statistics of this app's groups (or of every group)."""
        return await self.client.stats(all_groups=all_groups)

    async def health(self) -> Health:
        """Whether the backend and the balancer answer."""
        return await self.client.health()

    @property
    def requests_pending(self) -> int:
        """Requests from this app still waiting for their reply."""
        return self._requester.pending

    @property
    def late_replies(self) -> int:
        """Replies that came after their request had timed out (dropped)."""
        return self._requester.late_replies

    @property
    def expired_requests(self) -> int:
        """Requests this app's workers dropped unrun after their deadline, or cancelled at
        it (the caller had given up)."""
        return sum(responder.expired for responder in self._responders)

    @property
    def dropped_events(self) -> int:
        """Events this app's listeners dropped because their handlers fell behind."""
        return sum(listener.dropped for listener in self._listeners)


def _on_signal(
    sig: signal.Signals,
    stopping: asyncio.Event,
    loop: asyncio.AbstractEventLoop,
    installed: list[signal.Signals],
) -> None:
    log.info("received %s", sig.name)
    stopping.set()
    for each in installed:
        loop.remove_signal_handler(each)
    installed.clear()


def _return_type(func: HandlerFunc | None) -> Any:
    if func is None:
        return None
    try:
        hint = typing.get_type_hints(func).get("return")
    except (NameError, TypeError):
        return None
    return None if hint is type(None) else hint
