"""The client: publishes, routes each message to one member per group, runs cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from broker.backend import Backend, BackendRequest
from broker.clock import SystemClock
from broker.config import Config
from broker.connectors import get_connector
from broker.errors import ClientClosed, HandlerError, InvalidArgument, PayloadTooLarge
from broker.message import Codec, DeadLetter, Envelope, check_name, new_id
from broker.protocols import (
    Channels,
    Clock,
    Closing,
    ComponentHealth,
    Dispatcher,
    GroupStats,
    MemberInfo,
    Queue,
    Registry,
    StrategyFactory,
)
from broker.subscriber import Subscriber, cancel_task

__all__ = ["Client", "Health", "Stats"]

log = logging.getLogger("broker")
_DECLARE_AGAIN = 60.0


class Stats(msgspec.Struct, frozen=True):
    """A snapshot of queues and members, per topic and group."""

    app: str
    strategy: str
    groups: list[GroupStats]
    members: list[MemberInfo]
    taken_at: float


class Health(msgspec.Struct, frozen=True):
    """Whether the backend and the balancer answer."""

    ok: bool
    components: list[ComponentHealth]


class Client(Closing):
    """Publishes messages and creates subscribers over one queue (storage and leases), one
    registry (live members), one dispatcher (which member gets each message) and channels
    (non-durable fan-out, for events and RPC replies).

    Build one with `broker.new_memory_client` (or another constructor) and use it as an async
    context manager: leaving the block stops its subscribers and closes the backend.
    """

    def __init__(
        self,
        config: Config,
        queue: Queue,
        registry: Registry,
        dispatcher: Dispatcher,
        *,
        channels: Channels,
        clock: Clock,
        rng: random.Random | None = None,
        checks: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self.config = config
        self.channels = channels
        self.queue = queue
        self.dispatcher = dispatcher
        self.registry = registry
        self.clock = clock
        self.codec = Codec(config.content_type)
        self.rng = rng or random.Random()
        self._subscribers: list[Subscriber] = []
        self._groups: set[str] = {config.app_name}
        self._scopes: set[tuple[str, str]] = set()
        self._declared: dict[tuple[str, str], float] = {}  # -> when to declare again
        self._checks = list(checks)
        self._maintenance: asyncio.Task[None] | None = None
        self._on_close: list[Callable[[], Awaitable[None]]] = []
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str | None = None,
        *,
        app: str | None = None,
        strategy: str | StrategyFactory | None = None,
        config: Config | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        **options: Any,
    ) -> Client:
        """A client on the backend ``url`` names, chosen by its scheme (see `broker.connect`).

        Args:
            url: ``memory://``, ``redis://[user:password@]host:port/db``, ``rediss://...``,
                ``unix:///path.sock``, ``redis+cluster://host:port``, ``hybrid+redis://...``
                (also ``hybrid+rediss://``, ``hybrid+redis+cluster://``), or a plug-in's
                scheme; default ``config.backend_url``.
            app: application name, the default consumer group (overrides ``config.app_name``).
            strategy: a strategy name or a factory of your own `broker.protocols.Strategy`.
            config: timings, limits and names (default `Config()`).
            clock: time source for leases, delays and heartbeats (a `ManualClock` in tests).
            rng: random source for the strategies and retry jitter.
            **options: passed to the backend (the Redis backends take ``redis=``, an existing
                redis-py asyncio client, which the client then does not close).

        Raises:
            InvalidArgument: no backend is known for the URL's scheme.
            ConfigError: the URL contradicts ``config`` (e.g. its ``mode``).
            MissingDependency: the backend needs an extra that is not installed.
        """
        config = config or Config()
        changes: dict[str, object] = {}
        if app is not None:
            changes["app_name"] = app
        if isinstance(strategy, str):
            changes["strategy"] = strategy
        if url is not None:
            changes["url"] = url
        config = config.replace(**changes) if changes else config
        url = config.backend_url
        clock = clock or SystemClock()
        request = BackendRequest(url, config, clock, rng, strategy or config.strategy, options)
        backend: Backend = get_connector(url)(request)
        return cls(
            config,
            backend.queue,
            backend.registry,
            backend.dispatcher,
            channels=backend.channels,
            clock=clock,
            rng=rng,
            checks=backend.checks,
        )

    def on_close(self, close: Callable[[], Awaitable[None]]) -> Callable[[], None]:
        """Run ``close`` when the client closes, after its subscribers stopped; returns a
        function that cancels this (call it when ``close`` already ran)."""
        self._on_close.append(close)

        def cancel() -> None:
            with contextlib.suppress(ValueError):
                self._on_close.remove(close)

        return cancel

    async def aclose(self) -> None:
        """Stop every subscriber (gracefully), then close the dispatcher, registry and queue."""
        if self._closed:
            return
        for subscriber in list(self._subscribers):
            await subscriber.stop()
        self._closed = True
        if self._maintenance is not None:
            await cancel_task(self._maintenance)
        for close in list(self._on_close):
            await close()
        await self.channels.aclose()
        await self.dispatcher.aclose()
        await self.registry.aclose()
        await self.queue.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosed("this client is closed; create a new one")

    # -- publishing ------------------------------------------------------------------------

    def envelopes(
        self,
        topic: str,
        payloads: Sequence[object],
        keys: Sequence[str | None] | None,
        headers: dict[str, str] | None,
        max_attempts: int | None,
    ) -> list[Envelope]:
        """Encode and size-check every payload (before anything is stored); for `send`.

        Raises:
            PayloadTooLarge, SerializationError: a payload does not fit or cannot be encoded.
        """
        encode, limit = self.codec.encode, self.config.max_payload_bytes
        attempts, content_type = max_attempts or self.config.max_attempts, self.codec.content_type
        now = time.time()
        envelopes: list[Envelope] = []
        for index, payload in enumerate(payloads):
            data = encode(payload)
            if len(data) > limit:
                raise PayloadTooLarge(len(data), limit)
            key = keys[index] if keys is not None else None
            meta = dict(headers) if headers else {}
            envelopes.append(
                Envelope(new_id(), topic, data, now, key, meta, 0, attempts, content_type)
            )
        return envelopes

    async def publish(
        self,
        topic: str,
        payload: object,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        max_attempts: int | None = None,
        group: str | None = None,
    ) -> str:
        """Publish one message; one member of every group subscribed to ``topic`` handles it.

        Args:
            topic: where to publish (letters, digits and ``._-:/``).
            payload: anything msgspec encodes (dicts, lists, dataclasses, Structs, ...).
            key: routing key for the ``consistent_hash`` strategy.
            headers: string metadata carried with the message.
            max_attempts: deliveries before the message goes to the dead letters.
            group: give the message to this one consumer group (declared on the topic if
                needed) instead of to every group declared on ``topic``.

        Returns:
            The message id.

        Raises:
            InvalidTopic, PayloadTooLarge, SerializationError: before anything is stored.
        """
        self._check_open()
        check_name(topic)
        envelopes = self.envelopes(topic, [payload], [key], headers, max_attempts)
        await self._publish(topic, envelopes, group)
        return envelopes[0].id

    async def publish_many(
        self,
        topic: str,
        payloads: Sequence[object],
        *,
        keys: Sequence[str | None] | None = None,
        headers: dict[str, str] | None = None,
        max_attempts: int | None = None,
        group: str | None = None,
    ) -> list[str]:
        """Publish several messages to one topic in one batch; returns their ids.

        Every payload is encoded and checked before any is stored. ``group`` as for `publish`.
        """
        self._check_open()
        check_name(topic)
        if group is not None:
            check_name(group, "group")
        if keys is not None and len(keys) != len(payloads):
            raise InvalidArgument("keys", len(keys), f"as many keys as payloads ({len(payloads)})")
        envelopes = self.envelopes(topic, payloads, keys, headers, max_attempts)
        if envelopes:
            await self._publish(topic, envelopes, group)
        return [e.id for e in envelopes]

    async def _publish(self, topic: str, envelopes: Sequence[Envelope], group: str | None) -> None:
        if group is None:
            await self._deliver(topic, envelopes)
        else:
            await self.send(check_name(group, "group"), topic, envelopes)

    async def _deliver(self, topic: str, envelopes: Sequence[Envelope]) -> None:
        if self._checks:
            await self.ready()
        groups = await self.queue.groups(topic)
        if not groups:
            await self.queue.declare(topic, self.config.app_name)
            groups = [self.config.app_name]
        for group in groups:
            self._use(group, topic)
            await self.dispatcher.dispatch(group, topic, envelopes)

    async def send(
        self,
        group: str,
        topic: str,
        envelopes: Sequence[Envelope],
        *,
        require_member: bool = False,
    ) -> int:
        """Give built envelopes to one group only (declaring it on ``topic`` once per client).

        With ``require_member``, an envelope no live member of ``group`` handles is not stored
        at all. Returns how many were placed on a live member.
        """
        self._check_open()
        if self._checks:
            await self.ready()
        now = time.monotonic()
        if self._declared.get((group, topic), 0.0) < now:
            # again now and then: the group may have been retired and forgotten meanwhile
            await self.queue.declare(topic, group)
            if len(self._declared) > 10_000:
                self._declared.clear()
            self._declared[(group, topic)] = now + _DECLARE_AGAIN
        self._use(group, topic)
        return await self.dispatcher.dispatch(
            group, topic, envelopes, require_member=require_member, fan_out=False
        )

    def include_group(self, group: str) -> None:
        """Count ``group`` among this client's own, which `stats` shows by default."""
        self._groups.add(check_name(group, "group"))

    def _use(self, group: str, topic: str) -> None:
        """Remember a group and topic this client works with (the scope of `join`, `stats`)."""
        if (group, topic) not in self._scopes and len(self._scopes) < 10_000:
            self._scopes.add((group, topic))
            self._groups.add(group)

    async def ready(self) -> None:
        """Run the backend's start-up checks now (the first publish or start does it).

        Raises:
            ConfigError: e.g. another client of a different mode uses the same Redis prefix.
        """
        checks, self._checks = self._checks, []
        try:
            for check in checks:
                await check()
        except BaseException:
            self._checks = checks
            raise

    # -- subscribing -----------------------------------------------------------------------

    def subscriber(
        self,
        *,
        group: str | None = None,
        weight: int = 1,
        max_jobs: int | None = None,
        member_id: str | None = None,
    ) -> Subscriber:
        """A new member of ``group`` (default: the app name); add handlers, then `start` it.

        Args:
            group: consumer group; every group gets every message once.
            weight: share of the group's messages under the ``weighted`` strategy.
            max_jobs: handlers run at once at most (default ``config.max_jobs``).
            member_id: a stable id for this member (default: host, pid and a random suffix).
        """
        self._check_open()
        subscriber = Subscriber(
            self,
            group=check_name(group or self.config.app_name, "group"),
            weight=weight,
            max_jobs=self.config.max_jobs if max_jobs is None else max_jobs,
            member_id=member_id,
        )
        self._subscribers.append(subscriber)
        return subscriber

    def _started(self, subscriber: Subscriber) -> None:
        for topic in subscriber.topics:
            self._use(subscriber.group, topic)
        if self._maintenance is None:
            self._maintenance = asyncio.create_task(self._maintain(), name="broker-cleanup")

    def _forget(self, subscriber: Subscriber) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(subscriber)

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self.config.cleanup_interval)
            try:
                await self.cleanup()
            except Exception:
                log.exception("cleanup failed; retrying at the next tick")

    async def cleanup(self) -> int:
        """One cleanup pass (run every ``cleanup_interval``): evict silent members, hand
        their messages and every expired lease to live members, dispatch backlogs.

        Returns:
            How many messages were handed over.
        """
        moved = 0
        for member in await self.registry.evict_expired():
            log.warning("member %s of %s missed its heartbeats; evicted", member.id, member.group)
            moved += await self.dispatcher.handover(member.group, member.id, leased=True)
        moved += await self.dispatcher.expire_leases()
        for group in sorted(self._groups):
            moved += await self.dispatcher.drain_backlog(group)
        await self.retire_idle_groups()
        return moved

    async def retire_idle_groups(self) -> list[str]:
        """Retire every group with no live member for ``group_retention`` (run by `cleanup`).

        This client's running groups are marked alive first. A retired group no longer
        receives messages; what waited for it moves to its dead letters ("group retired").

        Returns:
            The groups retired.
        """
        now = self.clock.now()
        running = sorted({s.group for s in self._subscribers if s.running})
        await self.queue.mark_alive(running, now)
        retired: list[str] = []
        for group in await self.queue.idle_groups(now - self.config.group_retention):
            if await self.registry.members(group):
                await self.queue.mark_alive([group], now)
                continue
            moved = await self.queue.undeclare(None, group, "group retired")
            if moved:
                log.warning(
                    "group %s had no live member for %gs: retired, %d waiting messages moved "
                    "to its dead letters",
                    group, self.config.group_retention, moved,
                )  # fmt: skip
            retired.append(group)
        return retired

    async def undeclare(self, topic: str, group: str) -> int:
        """Stop giving ``topic`` to ``group`` now; what waits for it there moves to the dead
        letters (reason "group undeclared"). Returns how many messages moved.

        Raises:
            HandlerError: a live member of ``group`` still handles ``topic``.
        """
        self._check_open()
        check_name(topic)
        check_name(group, "group")
        handling = [m.id for m in await self.registry.members(group) if topic in m.topics]
        if handling:
            raise HandlerError(
                f"group {group!r} still has live members handling {topic!r} ({handling[0]}"
                f"{', ...' if len(handling) > 1 else ''}): stop them first"
            )
        self._declared.pop((group, topic), None)
        self._scopes.discard((group, topic))
        return await self.queue.undeclare(topic, group, "group undeclared")

    # -- operations ------------------------------------------------------------------------

    async def members(self, group: str | None = None) -> list[MemberInfo]:
        """Live members of one group (default: the app name)."""
        return await self.registry.members(group or self.config.app_name)

    async def set_weight(self, member: str, weight: int, *, group: str | None = None) -> bool:
        """Change a member's weight; applies from the next message. False if it is unknown."""
        if weight < 0:
            raise InvalidArgument("weight", weight, "an integer of 0 or more")
        return await self.registry.set_weight(group or self.config.app_name, member, weight)

    async def dead_letters(self, group: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters with their last error."""
        return await self.queue.dead_letters(group, limit)

    async def replay(self, ids: Sequence[str]) -> int:
        """Publish dead letters again (attempts reset) to their group; returns how many."""
        taken = await self.queue.take_dead(ids)
        by_group: dict[str, list[Envelope]] = defaultdict(list)
        for dead in taken:
            by_group[dead.group].append(msgspec.structs.replace(dead.envelope, attempt=0))
        for group, envelopes in by_group.items():
            await self.dispatcher.reroute(group, envelopes)
        return len(taken)

    async def purge(self, ids: Sequence[str]) -> int:
        """Delete dead letters for good; returns how many."""
        return len(await self.queue.take_dead(ids))

    async def stats(self, *, all_groups: bool = False) -> Stats:
        """Queue counts and live members of this client's groups (or of every group).

        This client's groups are its app's group and those it published to or subscribed in.

        Args:
            all_groups: every group under the prefix, e.g. other apps' (default: this
                client's own).
        """
        if self._checks:
            await self.ready()
        found = await self.queue.stats()
        groups = found if all_groups else [g for g in found if g.group in self._groups]
        names = sorted({g.group for g in groups} | (set() if all_groups else self._groups))
        members = [m for name in names for m in await self.registry.members(name)]
        handled = {(m.group, t) for m in members for t in m.topics}
        groups = [
            msgspec.structs.replace(g, unattended=True)
            if g.queued and (g.group, g.topic) not in handled
            else g
            for g in groups
        ]
        return Stats(
            app=self.config.app_name,
            strategy=self.config.strategy,
            groups=groups,
            members=members,
            taken_at=self.clock.now(),
        )

    async def health(self) -> Health:
        """Check the backend and the registry answer, with their latency."""
        backend = await self.queue.ping()
        started = time.perf_counter()
        try:
            await self.registry.members(self.config.app_name)
            registry = ComponentHealth(
                "balancer", True, (time.perf_counter() - started) * 1000, self.config.strategy
            )
        except Exception as exc:
            registry = ComponentHealth("balancer", False, 0.0, f"{type(exc).__name__}: {exc}")
        return Health(ok=backend.ok and registry.ok, components=[backend, registry])

    async def join(self, timeout: float = 30.0, *, all_groups: bool = False) -> None:
        """Wait until nothing is queued, delayed or in flight (a test and shutdown helper).

        Args:
            timeout: seconds to wait at most.
            all_groups: wait on every group and topic under the prefix (default: the topics
                this client published to or handles, in the groups it used for them).

        Raises:
            TimeoutError: work remained after ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = await self.queue.stats()
            scopes = self._scopes
            pending = sum(
                g.queued + g.in_flight + g.delayed
                for g in found
                if all_groups or (g.group, g.topic) in scopes
            )
            if pending == 0:
                return
            if loop.time() > deadline:
                raise TimeoutError(f"{pending} messages still pending after {timeout}s")
            await asyncio.sleep(0.005)
