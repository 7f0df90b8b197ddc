"""A subscriber: one member of a consumer group, running handlers with bounded concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import msgspec

from broker.errors import ClientClosed, HandlerError, InvalidArgument
from broker.handlers import Handler, HandlerFunc
from broker.message import Delivery, check_name
from broker.names import member_id as new_member_id
from broker.protocols import MemberInfo

if TYPE_CHECKING:
    from broker.client import Client

__all__ = ["Subscriber"]

log = logging.getLogger("broker")
F = TypeVar("F", bound=HandlerFunc)
_FETCH_WAIT = 1.0
_SPARE_CONNECTIONS = 16
_ERROR_PAUSE = 0.5


async def cancel_task(task: asyncio.Task[None]) -> None:
    """Cancel a task and wait for it, cancelling again if a library swallowed the request."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.1)
    with contextlib.suppress(asyncio.CancelledError):
        exc = task.exception()
        if exc is not None:
            log.error("task %s ended with an error", task.get_name(), exc_info=exc)


class Subscriber:
    """One live member of a group: registers, heartbeats, fetches and runs handlers.

    Create it with `Client.subscriber`, add handlers with `handler`, then `start` it (or use
    it as an async context manager). It runs at most ``max_jobs`` handlers at once and never
    fetches more than it can run.
    """

    def __init__(
        self,
        client: Client,
        *,
        group: str,
        weight: int,
        max_jobs: int,
        member_id: str | None,
    ) -> None:
        if max_jobs < 1:
            raise InvalidArgument("max_jobs", max_jobs, "an integer of 1 or more")
        if weight < 0:
            raise InvalidArgument("weight", weight, "an integer of 0 or more")
        self._client = client
        self.group = group
        self.id = check_name(member_id, "member id") if member_id else new_member_id()
        self.weight = weight
        self.max_jobs = max_jobs
        self._handlers: dict[str, Handler] = {}
        self._held: dict[str, Delivery] = {}
        self._settling: dict[asyncio.Future[bool], Delivery] = {}
        self._ready: deque[Delivery] = deque()
        self._idle_workers: deque[asyncio.Future[None]] = deque()
        self._waking = False
        self._slot = asyncio.Event()
        self._idle = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._fetcher: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = False
        self._stopped = asyncio.Event()
        self.processed = 0
        self.failed = 0
        self.lost = 0

    @property
    def running(self) -> bool:
        return self._fetcher is not None and not self._stopping

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(self._handlers)

    # -- handlers --------------------------------------------------------------------------

    def handler(self, topic: str) -> Callable[[F], F]:
        """Decorator: handle messages of ``topic`` with the decorated function."""

        def register(func: F) -> F:
            self.add_handler(topic, func)
            return func

        return register

    def add_handler(self, topic: str, func: HandlerFunc, *, payload_type: Any = None) -> None:
        """Handle messages of ``topic`` with ``func`` (async, or sync to run in a thread).

        Args:
            topic: the topic to handle.
            func: called with what its first parameter's annotation asks for (see `Handler`).
            payload_type: decode payloads into this type and pass ``func`` the whole
                `Message`, whatever its annotation says.
        """
        check_name(topic)
        if topic in self._handlers:
            raise HandlerError(f"topic {topic!r} already has a handler on this subscriber")
        if self._fetcher is not None:
            raise HandlerError("add handlers before start()")
        self._handlers[topic] = Handler(topic, func, payload_type=payload_type)

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Declare the group on each topic, register, and start fetching and heartbeating."""
        if self._stopping:
            raise ClientClosed("a stopped subscriber cannot start again; create a new one")
        if self._fetcher is not None:
            return
        if not self._handlers:
            raise HandlerError("add at least one handler before start()")
        self._client._check_open()
        await self._client.ready()
        if any(not h.is_async for h in self._handlers.values()):
            self._executor = ThreadPoolExecutor(self.max_jobs, thread_name_prefix="broker")
        await self._join()
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"broker-worker-{i}")
            for i in range(self.max_jobs)
        ]
        self._tasks.append(asyncio.create_task(self._keepalive(), name="broker-heartbeat"))
        self._fetcher = asyncio.create_task(self._fetch_loop(), name="broker-fetch")
        self._client._started(self)
        log.info("member %s joined group %s for %s", self.id, self.group, ", ".join(self._handlers))

    async def _join(self) -> None:
        for topic in self._handlers:  # again after an eviction: Redis may have lost its data
            await self._client.queue.declare(topic, self.group)
        info = MemberInfo(id=self.id, group=self.group, topics=self.topics, weight=self.weight)
        await self._client.registry.register(info)
        await self._client.queue.attach(self.group, self.id)
        await self._client.dispatcher.drain_backlog(self.group)

    async def wait_stopped(self) -> None:
        """Wait until `stop` has finished."""
        await self._stopped.wait()

    async def stop(self, grace: float | None = None) -> None:
        """Leave gracefully: stop fetching, hand unstarted messages to other members, give
        in-flight handlers ``grace`` seconds (default ``config.grace_period``) to finish,
        then cancel the rest and release them for immediate redelivery, and deregister.
        """
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        if self._fetcher is None:  # never started
            self._client._forget(self)
            self._stopped.set()
            return
        client = self._client
        grace = client.config.grace_period if grace is None else grace
        await cancel_task(self._fetcher)
        await client.registry.deregister(self.group, self.id)
        await client.dispatcher.handover(self.group, self.id, leased=False)
        while self._ready:
            await self._release(self._ready.popleft())
        if self._held:
            self._idle.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace)
        for task in self._tasks:
            await cancel_task(task)
        for delivery in list(self._held.values()):
            await self._release(delivery)
        await client.dispatcher.handover(self.group, self.id, leased=True)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        client._forget(self)
        self._stopped.set()
        log.info("member %s left group %s", self.id, self.group)

    async def _release(self, delivery: Delivery) -> None:
        self._held.pop(delivery.envelope.id, None)
        await self._client.dispatcher.release(delivery)

    # -- member info -----------------------------------------------------------------------

    async def info(self) -> MemberInfo | None:
        """This member's registry record (None if not registered) with this process's live
        ``in_flight``, ``processed`` and ``failed`` in place of the last heartbeat's."""
        for member in await self._client.registry.members(self.group):
            if member.id == self.id:
                return msgspec.structs.replace(
                    member, in_flight=len(self._held), processed=self.processed, failed=self.failed
                )
        return None

    async def set_weight(self, weight: int) -> None:
        """Change this member's weight; applies from the next message."""
        if weight < 0:
            raise InvalidArgument("weight", weight, "an integer of 0 or more")
        self.weight = weight
        await self._client.registry.set_weight(self.group, self.id, weight)

    async def heartbeat(self) -> None:
        """Beat once now (the background task does this every ``heartbeat_interval``);
        renew the leases of running handlers, and re-register if this member was evicted."""
        client = self._client
        if self._held:  # first, so the beat records the renewed deadlines for cleanup
            await client.queue.renew(list(self._held.values()), client.config.lease)
        alive = await client.registry.heartbeat(
            self.group,
            self.id,
            in_flight=len(self._held),
            processed=self.processed,
            failed=self.failed,
        )
        if not alive and not self._stopping:
            log.warning("member %s was evicted while alive; registering again", self.id)
            await self._join()

    # -- loops -----------------------------------------------------------------------------

    async def _keepalive(self) -> None:
        config = self._client.config
        period = min(config.heartbeat_interval, config.lease / 3)
        while True:
            await asyncio.sleep(period)
            try:
                await self.heartbeat()
            except Exception:
                log.exception("heartbeat of %s failed; retrying", self.id)

    async def _fetch_loop(self) -> None:
        config = self._client.config
        queue, lease = self._client.queue, config.lease
        # Idle, the blocking read waits up to a heartbeat interval: nothing but a new message
        # (which ends the read) or a retry the queue knows is due needs it sooner. While
        # handlers run, one of them may schedule a retry, so the read is kept short.
        # A blocking read holds a pooled connection: with about as many members as the pool
        # has connections, long reads would keep heartbeats and publishes waiting for one, so
        # reads stay short.
        idle_wait = max(config.heartbeat_interval, _FETCH_WAIT)
        subscribers = self._client._subscribers
        while not self._stopping:
            # a delivery whose ack is still on its way is held: never more than max_jobs
            # unacknowledged (the worker itself goes on to the next ready delivery)
            free = self.max_jobs - len(self._held)
            if free <= 0:
                self._slot.clear()
                await self._slot.wait()
                continue
            crowded = len(subscribers) > config.pool_size - _SPARE_CONNECTIONS
            wait = _FETCH_WAIT if self._held or crowded else idle_wait
            try:
                batch = await queue.fetch(self.group, self.id, free, lease, wait)
            except Exception:
                log.exception("fetch for %s failed; retrying", self.id)
                await asyncio.sleep(_ERROR_PAUSE * self._client.rng.uniform(0.5, 1.5))
                continue
            if batch:
                held = self._held
                for delivery in batch:
                    held[delivery.envelope.id] = delivery
                self._ready.extend(batch)
                self._wake_worker()
                await asyncio.sleep(0)  # let a worker start on it before fetching again

    def _wake_worker(self) -> None:
        if self._waking:
            return
        idle = self._idle_workers
        while idle:
            waiter = idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._waking = True
                return

    async def _worker(self) -> None:
        # Workers take from a deque. A worker wakes one more only while work is left, so a
        # batch of quick handlers costs one wake-up, and slow ones still run side by side.
        ready, idle = self._ready, self._idle_workers
        queue = self._client.queue
        # A queue whose ack is a round trip (Redis) settles it while the worker goes on.
        later: Callable[[Delivery], asyncio.Future[bool]] | None
        later = getattr(queue, "ack_later", None)
        loop = asyncio.get_running_loop()
        while True:
            if not ready:
                waiter = loop.create_future()
                idle.append(waiter)
                await waiter
                self._waking = False
                continue
            delivery = ready.popleft()
            if ready and idle and not self._waking:
                self._wake_worker()
            call = self._prepare(delivery)
            try:
                if call is None:  # sync handler, unknown topic or bad payload
                    await self._process(delivery)
                else:  # inlined: no coroutine per message on the fast path
                    try:
                        await call[0](call[1])  # type: ignore[misc]
                    except Exception as exc:
                        self.failed += 1
                        await self._failed(delivery, f"{type(exc).__name__}: {exc}")
                    else:
                        if later is not None:
                            self._settle_later(later(delivery), delivery)
                            continue  # its slot frees when the ack lands (`_settled`)
                        if await queue.ack(delivery):
                            self.processed += 1
                        else:
                            self._lost(delivery)
            except Exception:
                log.exception("settling message %s failed", delivery.envelope.id)
            self._finished(delivery)

    def _finished(self, delivery: Delivery) -> None:
        """``delivery`` is settled: it no longer holds a slot."""
        held = self._held
        if held.get(delivery.envelope.id) is delivery:
            del held[delivery.envelope.id]
        if not held:
            self._idle.set()
        self._slot.set()

    def _settle_later(self, settling: asyncio.Future[bool], delivery: Delivery) -> None:
        """Let the ack of ``delivery`` settle in the background; it stays held (renewed,
        waited for by `stop`) until the queue answers, and is counted processed or lost then."""
        self._settling[settling] = delivery
        settling.add_done_callback(self._settled)

    def _settled(self, settling: asyncio.Future[bool]) -> None:
        delivery = self._settling.pop(settling)
        if settling.cancelled():
            pass
        elif (exc := settling.exception()) is not None:
            log.error("settling message %s failed", delivery.envelope.id, exc_info=exc)
        elif settling.result():
            self.processed += 1
        else:
            self._lost(delivery)
        self._finished(delivery)

    def _prepare(self, delivery: Delivery) -> tuple[HandlerFunc, object] | None:
        """The fast path: an async handler and its decoded argument (None: take `_process`)."""
        handler = self._handlers.get(delivery.envelope.topic)
        if handler is None or not handler.is_async:
            return None
        try:
            return handler.func, handler.argument(self._client.codec, delivery)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None

    def _lost(self, delivery: Delivery) -> None:
        self.lost += 1
        log.warning("lease on %s was lost before its ack; not acked", delivery.envelope.id)

    async def _process(self, delivery: Delivery) -> None:
        queue = self._client.queue
        handler = self._handlers.get(delivery.envelope.topic)
        if handler is None:
            await self._bury(delivery, f"no handler for topic {delivery.envelope.topic!r}")
            return
        try:
            argument = handler.argument(self._client.codec, delivery)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            await self._bury(delivery, f"undecodable payload: {exc}")
            return
        try:
            if handler.is_async:
                await handler.func(argument)  # type: ignore[misc]
            else:
                await handler.call(argument, self._executor)
        except Exception as exc:
            self.failed += 1
            await self._failed(delivery, f"{type(exc).__name__}: {exc}")
            return
        if await queue.ack(delivery):
            self.processed += 1
        else:
            self._lost(delivery)

    async def _bury(self, delivery: Delivery, error: str) -> None:
        self.failed += 1
        log.error("message %s dead-lettered: %s", delivery.envelope.id, error)
        await self._client.queue.bury(delivery, error)

    async def _failed(self, delivery: Delivery, error: str) -> None:
        queue, config = self._client.queue, self._client.config
        if delivery.attempt >= delivery.envelope.max_attempts:
            log.error(
                "message %s dead after %d attempts: %s",
                delivery.envelope.id,
                delivery.attempt,
                error,
            )
            await queue.bury(delivery, error)
            return
        ceiling = min(config.retry_backoff_max, config.retry_backoff * 2 ** (delivery.attempt - 1))
        delay = ceiling / 2 + self._client.rng.uniform(0, ceiling / 2)
        await queue.retry(delivery, delay, error)
