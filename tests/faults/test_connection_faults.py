"""Connections killed by the server (``CLIENT KILL``) and a server out of memory."""

from __future__ import annotations

import asyncio
import os
import signal

import broker
from tests.faults.checker import (
    Faults,
    drained,
    handled_more,
    kill_connections,
    read_published,
    settled,
)
from tests.faults.conftest import Stage
from tests.processes.harness import APP, Child, Site, until

TYPED = (broker.RequestTimeout, broker.NoResponder, broker.BackendError)
PAD = "x" * 4_000  # 500 batches of 10 fill 20 MB, ten times the memory left


def start_responder(site: Site, slow: float) -> Child:
    """``broker worker tests.faults.rpc_app:app`` on the site, in its mode."""
    env = {
        "APP_NAME": APP,
        "REDIS_URL": site.url,
        "QUEUE_PREFIX": site.prefix,
        "HEARTBEAT_TTL": "2s",
        "HEARTBEAT_INTERVAL": "200ms",
        "CLEANUP_TICKER": "500ms",
        "BROKER_TEST_SLOW": str(slow),
    }
    args = ["worker", "tests.faults.rpc_app:app", "--mode", site.mode]
    child = Child("responder", "broker.cli", args, site.tmp / "responder.log", env=env)
    site.children.append(child)
    return child


async def _killed_some(redis: object, pid: int) -> bool:
    return await kill_connections(redis, pid) > 0


async def test_client_kill_of_worker_connections_mid_batch_loses_nothing(stage: Stage) -> None:
    _, site = await stage()
    faults = Faults()
    workers = [site.worker(f"w{i}", "--max-jobs", "20", "--slow", "0.02") for i in range(2)]
    victim = workers[0]
    faults.pids.add(victim.pid)  # its acks may die with its connections: those may run twice
    producer = site.producer("p", 3_000, "--batch", "20", "--pause", "0.005", "--keep-going")
    redis = site.redis()
    for _ in range(3):
        await handled_more(site, 20, pid=victim.pid, timeout=15)
        # between two kills the victim may run on what it already fetched and hold no
        # connection at this instant: wait for one to kill
        await until(
            lambda: _killed_some(redis, victim.pid), 15, "the victim holds a connection to kill"
        )
    child, ids = producer
    child.expect("published", timeout=60)
    child.assert_exits_cleanly()
    published = read_published([ids])
    result = await drained(site, published, faults)
    result.check()
    await settled(site)
    for worker in workers:
        worker.signal(signal.SIGTERM)
    for worker in workers:
        worker.assert_exits_cleanly()


async def test_client_kill_of_requester_mid_rpc_gives_typed_errors_and_recovers(
    stage: Stage,
) -> None:
    _, site = await stage()
    responder = start_responder(site, slow=0.05)
    requester = broker.App(site.client())

    async def call(n: int, timeout: float = 2.0) -> object:
        try:
            return await asyncio.wait_for(
                requester.request("echo", n, timeout=timeout), timeout + 2
            )
        except TYPED as exc:
            return exc

    async def answered() -> bool:
        return await call(-1, timeout=1.0) == -1

    await until(answered, 20, "the responder answers")
    calls = [asyncio.create_task(call(n)) for n in range(100)]
    killed = []
    for _ in range(5):  # the fault schedule: five kills 0.1 s apart while requests run
        await asyncio.sleep(0.1)
        killed.append(await kill_connections(site.redis(), os.getpid()))
    assert killed[0] > 0, killed  # (later rounds find what reconnected since)
    outcomes = await asyncio.gather(*calls)  # wait_for above: none of them hangs
    for n, outcome in enumerate(outcomes):
        assert outcome == n or isinstance(outcome, TYPED), (n, outcome)

    await until(answered, 5, "requests flow again after the kill")
    later = await asyncio.gather(*(call(n) for n in range(50)))
    assert later == list(range(50))
    responder.signal(signal.SIGTERM)
    responder.assert_exits_cleanly()


async def test_out_of_memory_publish_raises_backend_error_and_flow_resumes(
    stage: Stage,
) -> None:
    _, site = await stage(extra_args=["--maxmemory-policy", "noeviction"])
    faults = Faults()
    # A live member that holds one message and lets the rest wait in Redis for it.
    holder = site.worker("w0", "--slow", "60", "--max-jobs", "1", "--grace", "0.2")
    client = site.client()
    redis = site.redis()
    used = int((await redis.info("memory"))["used_memory"])
    await redis.config_set("maxmemory", used + 2 * 1024 * 1024)

    accepted: list[str] = []
    refused: BaseException | None = None
    for batch in range(500):
        try:
            accepted += await client.publish_many("jobs", [f"{batch}:{i}:{PAD}" for i in range(10)])
        except broker.BrokerError as exc:
            refused = exc
            break
    assert isinstance(refused, broker.BackendError), refused
    assert "OOM" in str(refused) or "memory" in str(refused), refused
    # Every accepted message is stored with its counters, none of the refused batch is: the
    # holder has one in flight, the rest wait.
    stats = await client.stats()
    waiting = sum(g.queued + g.in_flight for g in stats.groups if g.topic == "jobs")
    assert waiting == len(accepted), (waiting, len(accepted), stats.groups)

    await redis.config_set("maxmemory", 0)
    accepted += await client.publish_many("jobs", list(range(100)))
    site.worker("w1", "--max-jobs", "50")
    holder.signal(signal.SIGTERM)  # hands what it holds over at once
    holder.assert_exits_cleanly()
    result = await drained(site, accepted, faults)
    result.check()
    await settled(site)  # counters agree with what is stored: nothing half-written
    assert not result.more, result.more
    assert not result.unknown, result.unknown  # a refused batch stored none of its messages
