"""Workers killed and stopped under load: every publish that returned is handled, and only
what a killed or stopped worker had in flight may run twice."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.faults.checker import Faults, drained, handled_more, read_published, settled
from tests.faults.conftest import Stage
from tests.processes.harness import Child, Site, until
from tests.processes.worker import CLEANUP_INTERVAL, HEARTBEAT_TTL

FAST = ("--max-jobs", "20")


async def kill_and_restart(
    site: Site, workers: list[Child], faults: Faults, kills: int, every: float
) -> None:
    """Every ``every`` seconds (once work flows) SIGKILL one worker, in turn, and start a new
    one in its place."""
    for round_ in range(kills):
        index = round_ % len(workers)
        await asyncio.sleep(every)  # the fault schedule, not a synchronisation
        await handled_more(site, 50)
        faults.kill(workers[index])
        workers[index] = site.worker(f"w{index}-{round_ + 1}", *FAST)


async def sigkill_soak(
    stage: Stage, kills: int, per_producer: int, every: float = 0.0, pause: float = 0.02
) -> None:
    _, site = await stage()
    faults = Faults()
    workers = [site.worker(f"w{i}", *FAST) for i in range(4)]
    pacing = ("--batch", "20", "--pause", str(pause))
    producers = [site.producer(f"p{i}", per_producer, *pacing) for i in range(2)]

    await kill_and_restart(site, workers, faults, kills, every)
    for child, _ in producers:
        child.expect("published", timeout=60)
        child.assert_exits_cleanly()
    published = read_published(path for _, path in producers)
    result = await drained(site, published, faults, timeout=HEARTBEAT_TTL + 20)
    result.check()
    await settled(site)
    assert len(published) == 2 * per_producer
    assert len(result.more) <= kills * 20  # at most max_jobs in flight per killed worker
    for worker in workers:
        worker.signal(signal.SIGTERM)
    for worker in workers:
        worker.assert_exits_cleanly()


async def test_sigkill_soak_short_loses_nothing(stage: Stage) -> None:
    await sigkill_soak(stage, kills=2, per_producer=1_000)


@pytest.mark.soak
async def test_sigkill_soak_loses_nothing(stage: Stage) -> None:
    # one kill every 2 s for about 30 s, producers running throughout
    await sigkill_soak(stage, kills=12, per_producer=15_000, every=2.0, pause=0.04)


async def test_stopped_worker_late_ack_is_refused_and_counted(stage: Stage) -> None:
    _, site = await stage()
    faults = Faults()
    holder = site.worker("a", "--slow", "4", "--lease", "1")
    client = site.client()
    message_id = await client.publish("jobs", "held")
    await until(lambda: bool(site.started.of(message_id)), 10, "a started the handler")

    faults.stop(holder)  # past its lease and its heartbeat TTL
    try:
        other = site.worker("b", "--lease", "1")
        await until(
            lambda: any(line.member == "b" for line in site.ledger.of(message_id)),
            HEARTBEAT_TTL + CLEANUP_INTERVAL + 10,
            "b handled the message after a lost its lease",
        )
    finally:
        holder.signal(signal.SIGCONT)
    await until(
        lambda: any(line.member == "a" for line in site.ledger.of(message_id)),
        10,
        "a finished its handler late",
    )
    holder.signal(signal.SIGTERM)  # stop() settles that handler's ack attempt first
    assert holder.expect("stopped").split()[1:] == ["processed=0", "lost=1", "failed=0"]
    holder.assert_exits_cleanly()
    other.signal(signal.SIGTERM)
    assert other.expect("stopped").split()[1:] == ["processed=1", "lost=0", "failed=0"]
    other.assert_exits_cleanly()

    result = await drained(site, [message_id], faults, timeout=1)
    result.check()
    await settled(site)
    assert sorted((x.member, x.attempt) for x in site.ledger.of(message_id)) == [("a", 1), ("b", 2)]
    stats = await client.stats()
    group = [g for g in stats.groups if g.topic == "jobs"]
    assert sum(g.processed for g in group) == 1, group  # the late ack of a was refused
    assert sum(g.queued + g.in_flight for g in group) == 0, group
    assert await client.dead_letters() == []
