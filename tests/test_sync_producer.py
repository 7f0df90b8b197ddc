"""The blocking producer API, called from plain threads."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest

import broker
from broker.backends.redis import connect
from tests.conftest import FAST, _drop_prefix
from tests.contract.helpers import wait_for
from tests.redis_servers import require_redis_server, shared_redis_ok, shared_redis_url


class Query(msgspec.Struct, frozen=True):
    id: int


class Answer(msgspec.Struct, frozen=True):
    id: int
    thread: str


@pytest.fixture
async def config() -> AsyncIterator[broker.Config]:
    require_redis_server()
    url = shared_redis_url()
    assert shared_redis_ok(url), f"no Redis answers at {url}"
    prefix = f"test-sync-{uuid.uuid4().hex[:12]}"
    yield FAST.replace(app_name="sync", mode="redis", redis_url=url, prefix=prefix)
    redis = connect(url)
    await _drop_prefix(redis, prefix)
    await redis.aclose()


async def test_sync_producer_enqueues_broadcasts_and_requests_from_threads(
    config: broker.Config,
) -> None:
    worker = broker.App(broker.new_client(config), owns_client=True)
    tasks: list[int] = []
    events: list[str] = []

    @worker.on_task("COUNT")
    async def count(n: int) -> None:
        tasks.append(n)

    @worker.on_event("news")
    async def news(text: str) -> None:
        events.append(text)

    @worker.on_request("ANSWER")
    async def answer(query: Query) -> Answer:
        if query.id < 0:
            raise ValueError("negative")
        return Answer(query.id, threading.current_thread().name)

    async with worker:

        def produce() -> list[Answer]:
            with broker.SyncProducer.from_config(config) as producer:
                ids = [producer.enqueue("COUNT", n) for n in range(10)]
                assert len(set(ids)) == 10
                assert producer.broadcast("news", "hello") == 1
                with pytest.raises(broker.RemoteError, match="negative"):
                    producer.request("ANSWER", Query(-1), timeout=10)
                results: list[Answer] = []

                def ask(n: int) -> None:
                    results.append(producer.request("ANSWER", Query(n), timeout=10, returns=Answer))

                threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                return results

        results = await asyncio.to_thread(produce)
        assert sorted(r.id for r in results) == list(range(8))
        await wait_for(lambda: sorted(tasks) == list(range(10)) and events == ["hello"])


def test_sync_producer_refuses_a_request_nobody_handles_and_use_after_close() -> None:
    producer = broker.SyncProducer.from_config(broker.Config(app_name="lonely"))
    with pytest.raises(broker.NoResponder):
        producer.request("NOBODY", 1, timeout=5.0)
    assert producer.enqueue("LATER", {"a": 1})
    producer.close()
    with pytest.raises(broker.ClientClosed):
        producer.enqueue("LATER", {"a": 1})
