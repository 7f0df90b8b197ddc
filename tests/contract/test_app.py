"""The application API on every backend: tasks, events and RPC."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

import msgspec
import pytest

import broker
from tests.conftest import FAST, MakeClient
from tests.contract.helpers import eventually, wait_for


class Order(msgspec.Struct, frozen=True):
    id: str
    amount: int = 0


class UserQuery(msgspec.Struct, frozen=True):
    id: int


class UserInfo(msgspec.Struct, frozen=True):
    id: int
    name: str


class Login(msgspec.Struct, frozen=True):
    username: str


class OutOfStock(Exception):
    pass


async def test_tasks_run_once_each_with_typed_payloads(make_client: MakeClient) -> None:
    seen: Counter[str] = Counter()
    client = make_client("shop")  # apps of one process share a client (memory: one backend)
    apps = [broker.App(client, max_jobs=4) for _ in range(3)]
    for app in apps:

        @app.on_task("NEW_ORDER")
        async def process(order: Order) -> None:
            assert isinstance(order, Order)
            seen[order.id] += 1

    producer = broker.App(client)
    for app in apps:
        await app.start()
    ids = await producer.enqueue_many("NEW_ORDER", [Order(f"o{i}", i) for i in range(300)])
    ids.append(await producer.enqueue("NEW_ORDER", Order("last")))
    await wait_for(lambda: sum(seen.values()) >= 301)
    await producer.client.join()
    assert len(set(ids)) == 301
    assert len(seen) == 301
    assert set(seen.values()) == {1}
    handled = [app.member.processed for app in apps if app.member is not None]
    assert sum(handled) == 301
    assert all(n > 0 for n in handled)
    for app in apps:
        await app.stop()


async def test_unknown_task_waits_for_a_worker_that_knows_it(make_client: MakeClient) -> None:
    client = make_client("shop")
    early = broker.App(client)
    ran: list[str] = []

    @early.on_task("KNOWN")
    async def known(payload: dict[str, int]) -> None:
        ran.append("known")

    await early.start()
    await early.enqueue("LATER", {"n": 1})
    await early.enqueue("KNOWN", {"n": 1})
    await wait_for(lambda: ran == ["known"])
    stats = await early.stats()
    waiting = [g for g in stats.groups if g.topic == "task:LATER"]
    assert sum(g.queued for g in waiting) == 1
    assert await early.client.dead_letters() == []

    late = broker.App(client)

    @late.on_task("LATER")
    async def later(payload: dict[str, int]) -> None:
        ran.append("later")

    await late.start()
    await wait_for(lambda: ran == ["known", "later"])
    await early.stop()
    await late.stop()


async def test_failing_task_is_retried_then_dead_lettered(make_client: MakeClient) -> None:
    app = broker.App(make_client("shop"))
    attempts: list[int] = []

    @app.on_task("FLAKY")
    async def flaky(message: broker.Message[Order]) -> None:
        attempts.append(message.attempt)
        raise OutOfStock(message.payload.id)

    async with app:
        await app.enqueue("FLAKY", Order("x"), max_attempts=3)
        await eventually(lambda: _has_dead(app))
    assert attempts == [1, 2, 3]
    [dead] = await app.client.dead_letters()
    assert "OutOfStock: x" in dead.error


async def _has_dead(app: broker.App) -> bool:
    return bool(await app.client.dead_letters())


async def test_sync_handlers_run_off_the_event_loop(make_client: MakeClient) -> None:
    app = broker.App(make_client("shop"), max_jobs=2)
    loop_thread = threading.get_ident()
    threads: list[int] = []

    @app.on_task("SYNC_TASK")
    def task(order: Order) -> None:
        threads.append(threading.get_ident())

    @app.on_request("SYNC_RPC")
    def rpc(query: UserQuery) -> UserInfo:
        threads.append(threading.get_ident())
        return UserInfo(query.id, "sync")

    async with app:
        await app.enqueue("SYNC_TASK", Order("a"))
        assert await app.request("SYNC_RPC", UserQuery(3), timeout=10) == UserInfo(3, "sync")
        await wait_for(lambda: len(threads) == 2)
    assert loop_thread not in threads


async def test_events_reach_every_listener_but_not_one_that_joined_late(
    make_client: MakeClient,
) -> None:
    received: dict[int, list[str]] = {i: [] for i in range(4)}
    client = make_client("listeners")
    apps = []
    for index in range(4):
        app = broker.App(client, group=f"listener{index}")

        def listen(app: broker.App, index: int) -> None:
            @app.on_event("user_events")
            async def log_login(event: Login) -> None:
                received[index].append(event.username)

        listen(app, index)
        apps.append(app)
    for app in apps[:3]:
        await app.start()
    sender = broker.App(client)
    for i in range(10):
        await sender.broadcast("user_events", Login(f"early{i}"))
    await wait_for(lambda: all(len(received[i]) == 10 for i in range(3)))
    await apps[3].start()
    for i in range(5):
        await sender.broadcast("user_events", Login(f"late{i}"))
    await wait_for(lambda: all(len(received[i]) == 15 for i in range(3)) and received[3] != [])
    await wait_for(lambda: len(received[3]) == 5)
    assert received[3] == [f"late{i}" for i in range(5)]
    assert sorted(received[0]) == sorted([f"early{i}" for i in range(10)] + received[3])
    for app in apps:
        await app.stop()


async def test_a_slow_listener_drops_the_oldest_events_instead_of_growing(
    make_client: MakeClient,
) -> None:
    app = broker.App(make_client("slow"), max_jobs=1, event_buffer=10)
    gate = asyncio.Event()
    handled: list[int] = []

    @app.on_event("ticks")
    async def tick(n: int) -> None:
        await gate.wait()
        handled.append(n)

    async with app:
        for n in range(100):
            await app.broadcast("ticks", n)
        await wait_for(lambda: app.dropped_events >= 89)
        gate.set()
        await wait_for(lambda: len(handled) == 100 - app.dropped_events)
    assert len(handled) <= 11
    assert handled[-10:] == list(range(90, 100))


async def test_rpc_answers_1000_concurrent_requests_without_cross_talk(
    make_client: MakeClient,
) -> None:
    client = make_client("users")
    responders = [broker.App(client, max_jobs=50) for _ in range(2)]
    for app in responders:

        @app.on_request("GET_USER_INFO")
        async def get_user(query: UserQuery) -> UserInfo:
            await asyncio.sleep(0)
            return UserInfo(query.id, f"user-{query.id}")

        await app.start()
    callers = [broker.App(client) for _ in range(2)]

    async def ask(caller: broker.App, n: int) -> tuple[int, UserInfo]:
        reply = await caller.request("GET_USER_INFO", UserQuery(n), timeout=30.0, returns=UserInfo)
        return n, reply

    replies = await asyncio.gather(*(ask(callers[n % 2], n) for n in range(1000)))
    assert all(reply == UserInfo(n, f"user-{n}") for n, reply in replies)
    assert all(caller.requests_pending == 0 for caller in callers)
    for app in responders:
        await app.stop()


async def test_rpc_remote_exception_becomes_remote_error(make_client: MakeClient) -> None:
    app = broker.App(make_client("users"))

    @app.on_request("RESERVE")
    async def reserve(order: Order) -> None:
        raise OutOfStock(f"no stock for {order.id}")

    @app.on_request("LOOKUP")
    async def lookup(query: UserQuery) -> UserInfo:
        raise KeyError(query.id)

    async with app:
        with pytest.raises(broker.RemoteError) as caught:
            await app.request("RESERVE", Order("o-7"), timeout=10)
        assert caught.value.remote_type == f"{__name__}.OutOfStock"
        assert caught.value.remote_message == "no stock for o-7"
        with pytest.raises(broker.RemoteError) as caught:
            await app.request("LOOKUP", UserQuery(5), timeout=10)
        assert caught.value.remote_type == "KeyError"
        with pytest.raises(broker.RemoteError, match="ValidationError"):
            await app.request("LOOKUP", {"id": "not a number"}, timeout=10)


async def test_rpc_to_a_name_nobody_handles_fails_at_once_and_stores_nothing(
    make_client: MakeClient,
) -> None:
    client = make_client("users")
    app = broker.App(client)
    started = time.perf_counter()
    with pytest.raises(broker.NoResponder, match="NOBODY"):
        await app.request("NOBODY", UserQuery(1), timeout=5.0)
    assert time.perf_counter() - started < 1.0
    assert app.requests_pending == 0
    worker = broker.App(client)

    @worker.on_request("OTHER")
    async def other(query: UserQuery) -> int:
        return query.id

    async with worker:  # a live member that handles another name is no responder either
        with pytest.raises(broker.NoResponder):
            await app.request("NOBODY", UserQuery(1), timeout=5.0)
        assert await app.request("OTHER", UserQuery(4), timeout=10) == 4
    stats = await client.stats()
    assert all(g.queued == 0 for g in stats.groups if g.topic == "rpc:NOBODY")


async def test_rpc_deadline_cancels_the_handler_and_drops_queued_requests_unrun(
    make_client: MakeClient,
) -> None:
    client = make_client("users")
    caller = broker.App(client)
    worker = broker.App(client, max_jobs=1)
    ran: list[int] = []
    blocking, cancelled = asyncio.Event(), asyncio.Event()

    @worker.on_request("BLOCK")
    async def block(query: UserQuery) -> int:
        blocking.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return query.id

    @worker.on_request("QUICK")
    async def quick(query: UserQuery) -> int:
        ran.append(query.id)
        return query.id

    async with worker:
        busy = asyncio.create_task(caller.request("BLOCK", UserQuery(1), timeout=1.5))
        await blocking.wait()  # the only slot is taken: QUICK waits in the queue
        with pytest.raises(broker.RequestTimeout):
            await caller.request("QUICK", UserQuery(2), timeout=0.2)
        with pytest.raises(broker.RequestTimeout):
            await busy
        await asyncio.wait_for(cancelled.wait(), 5.0)  # cancelled at the caller's deadline
        await wait_for(lambda: worker.expired_requests == 2)  # and QUICK dropped unrun
        assert ran == []
        await client.join()
        assert caller.late_replies == 0
        assert await caller.request("QUICK", UserQuery(3), timeout=10) == 3
        assert ran == [3]


async def test_rpc_late_reply_of_a_sync_handler_is_dropped(make_client: MakeClient) -> None:
    client = make_client("users")
    caller = broker.App(client)
    worker = broker.App(client)
    started, release = threading.Event(), threading.Event()

    @worker.on_request("SLOW")
    def slow(query: UserQuery) -> int:  # a thread cannot be cancelled: it runs on
        started.set()
        release.wait(10)
        return query.id

    async with worker:
        call = asyncio.create_task(caller.request("SLOW", UserQuery(2), timeout=0.3))
        await asyncio.to_thread(started.wait, 10)
        with pytest.raises(broker.RequestTimeout):
            await call
        release.set()
        await client.join()
        assert caller.late_replies == 0  # cancelled at the deadline: its reply is not sent
        assert worker.expired_requests == 1
        assert caller.requests_pending == 0


async def test_tasks_and_requests_run_once_whatever_the_number_of_apps(
    make_client: MakeClient, backend: str
) -> None:
    first = make_client("resizer")
    second = first if backend == "memory" else make_client("thumbnails")  # memory: one process
    ran: Counter[str] = Counter()
    apps = [broker.App(first), broker.App(second), broker.App(second)]
    for app in apps:

        @app.on_task("resize")
        async def resize(order: Order) -> None:
            ran[order.id] += 1

        @app.on_request("price")
        async def price(order: Order) -> int:
            ran[f"price-{order.id}"] += 1
            return order.amount * 2

    for app in apps:
        await app.start()
    producer = broker.App(make_client("shop") if backend != "memory" else first)
    await producer.enqueue_many("resize", [Order(f"o{i}") for i in range(60)])
    prices = [await producer.request("price", Order(f"p{i}", i), timeout=10) for i in range(30)]
    assert prices == [2 * i for i in range(30)]
    await wait_for(lambda: sum(ran.values()) >= 90)
    await producer.client.join()
    assert len(ran) == 90
    assert set(ran.values()) == {1}
    assert sum(app.member.processed for app in apps if app.member is not None) == 90
    for app in apps:
        await app.stop()


async def test_stop_lets_a_running_task_finish(make_client: MakeClient) -> None:
    app = broker.App(make_client("shop", config=FAST.replace(grace_period=10.0)))
    started, finished = asyncio.Event(), []
    gate = asyncio.Event()

    @app.on_task("LONG")
    async def long(order: Order) -> None:
        started.set()
        await gate.wait()
        finished.append(order.id)

    await app.start()
    await app.enqueue("LONG", Order("slow"))
    await started.wait()
    stopping = asyncio.create_task(app.stop())
    member = app.member
    assert member is not None
    await wait_for(lambda: not member.running)
    gate.set()
    await stopping
    assert finished == ["slow"]
    assert await app.client.dead_letters() == []


async def test_app_errors_are_typed(make_client: MakeClient) -> None:
    app = broker.App(make_client("shop"))
    with pytest.raises(broker.InvalidTopic):
        await app.enqueue("bad name", {})
    with pytest.raises(broker.InvalidTopic):
        app.on_task("a*b")
    with pytest.raises(broker.HandlerError):
        await app.start()

    @app.on_task("T")
    async def t(x: int) -> None: ...

    with pytest.raises(broker.HandlerError):
        app.on_task("T")(t)
    with pytest.raises(broker.PayloadTooLarge):
        await app.broadcast("E", b"x" * (FAST.max_payload_bytes + 1))


async def test_short_lived_apps_leave_nothing_behind_on_a_shared_client(
    make_client: MakeClient,
) -> None:
    client = make_client("users")
    worker = broker.App(client)

    @worker.on_request("DOUBLE")
    async def double(n: int) -> int:
        return 2 * n

    async with worker:
        for n in range(20):  # e.g. one App per web request over one client
            async with broker.App(client) as caller:
                assert await caller.request("DOUBLE", n, timeout=10) == 2 * n
    assert client._on_close == []  # no close hook of a stopped app is kept


async def test_an_app_with_its_own_group_is_reached_only_by_producers_of_that_group(
    make_client: MakeClient, backend: str
) -> None:
    client = make_client("shop")
    other = client if backend == "memory" else make_client("shop")
    ran: list[tuple[str, str]] = []
    main, canary = broker.App(client), broker.App(other, group="canary")
    for name, app in (("main", main), ("canary", canary)):

        @app.on_task("resize")
        async def resize(order: Order, name: str = name) -> None:
            ran.append((name, order.id))

    async with main, canary:
        await broker.App(other).enqueue_many("resize", [Order(f"m{i}") for i in range(20)])
        await broker.App(client, group="canary").enqueue("resize", Order("c"))
        await client.join()
        await other.join()
        assert sorted(ran) == sorted([("canary", "c"), *(("main", f"m{i}") for i in range(20))])
