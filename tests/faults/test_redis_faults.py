"""redis-server restarted (with and without AOF) and stopped under load."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import broker
from tests.faults.checker import Faults, drained, read_published, settled
from tests.faults.conftest import Stage
from tests.processes.harness import Child, Site, until
from tests.redis_servers import RedisServer

TYPED = {"BackendError", "BackendUnavailable", "RequestTimeout"}
RECOVERY = 5.0


def finish(producer: tuple[Child, Path], timeout: float = 60) -> dict[str, object]:
    """Wait for a producer to exit 0; its summary (errors by type, longest call)."""
    child, _ = producer
    child.expect("published", timeout=timeout)
    summary: dict[str, object] = json.loads(child.expect("summary").split(" ", 1)[1])
    child.assert_exits_cleanly()
    return summary


def stop_workers(workers: list[Child]) -> None:
    for worker in workers:
        worker.signal(signal.SIGTERM)
    for worker in workers:
        worker.assert_exits_cleanly()


async def restart_under_load(
    server: RedisServer, site: Site, faults: Faults
) -> tuple[list[str], dict[str, object]]:
    """Two workers and a producer that keeps going; redis-server SIGKILLed and started again
    once a backlog exists. The ids whose publish returned, and the producer's summary."""
    for i in range(2):
        site.worker(f"w{i}", "--max-jobs", "20", "--slow", "0.05")
    producer = site.producer("p", 2_500, "--batch", "10", "--pause", "0.002", "--keep-going")
    await until(lambda: len(site.ledger.refresh()) >= 200, 20, "work flows")
    await asyncio.to_thread(server.kill)
    await asyncio.to_thread(server.start)
    faults.outage_over(site)
    summary = finish(producer)
    published = read_published([producer[1]])
    return published, summary


async def test_redis_restart_with_aof_loses_no_returned_publish(stage: Stage) -> None:
    server, site = await stage(appendonly=True)
    faults = Faults()
    published, summary = await restart_under_load(server, site, faults)

    result = await drained(site, published, faults)
    result.check()
    await settled(site)
    assert len(result.more) <= 2 * 20, result.more  # at most what was in flight
    errors = summary["errors"]
    assert isinstance(errors, dict)
    assert set(errors) <= TYPED, errors
    stop_workers([c for c in site.children if c.name.startswith("worker")])


async def test_redis_restart_without_persistence_recovers_within_5s(stage: Stage) -> None:
    server, site = await stage()
    faults = Faults()
    workers = [site.worker(f"w{i}") for i in range(2)]
    client = site.client()  # a long-lived producer: its caches predate the restart
    before = await client.publish_many("jobs", list(range(50)))
    await until(lambda: set(before) <= site.ledger.ids(), 10, "the first messages")

    await asyncio.to_thread(server.restart)  # no AOF, no RDB: every key is gone
    restarted = time.monotonic()
    probes: list[str] = []

    async def a_probe_is_handled() -> bool:
        try:
            probes.append(await client.publish("jobs", "probe"))
        except broker.BackendError:
            return False
        return bool(set(probes) & site.ledger.ids())

    async def both_registered() -> bool:
        return {m.id for m in await client.members()} == {"w0", "w1"}

    await until(a_probe_is_handled, RECOVERY + 5, "a message published after the restart")
    if site.mode == "redis":  # (hybrid members live in their own process's registry)
        await until(both_registered, RECOVERY + 5, "both workers registered again")
    recovered = time.monotonic() - restarted
    assert recovered <= RECOVERY, recovered

    later = await client.publish_many("jobs", list(range(300)))  # after recovery: all flow
    result = await drained(site, later, faults, timeout=15)
    result.check()
    await settled(site)
    stop_workers(workers)


async def test_stopped_redis_server_bounds_every_call_and_flow_resumes(stage: Stage) -> None:
    server, site = await stage()
    faults = Faults()
    workers = [site.worker(f"w{i}") for i in range(2)]
    producer = site.producer("p", 2_000, "--batch", "10", "--pause", "0.003", "--keep-going")
    await until(lambda: len(site.ledger.refresh()) >= 200, 20, "work flows")
    outage = 3.0
    os.kill(server.pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(outage)  # the fault itself: redis-server frozen for 3 s
    finally:
        os.kill(server.pid, signal.SIGCONT)
    faults.outage_over(site)

    summary = finish(producer)
    published = read_published([producer[1]])
    result = await drained(site, published, faults, timeout=20)
    result.check()
    await settled(site)
    errors, longest = summary["errors"], summary["longest"]
    assert isinstance(errors, dict)
    assert set(errors) <= TYPED, errors
    assert isinstance(longest, float)
    assert errors or longest > outage / 2, summary  # the producer did meet the outage
    assert longest < outage + 2.0, longest  # waited out the stop, never hung past it
    stop_workers(workers)
