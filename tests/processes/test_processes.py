"""End-to-end runs with real processes: worker and producer scripts on Redis, killed, stopped,
terminated and restarted by the test, checked against the ledger the workers append to."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import broker
from tests.processes.conftest import new_prefix
from tests.processes.harness import APP, TOPIC, Child, Site, read_ids, until
from tests.processes.worker import CLEANUP_INTERVAL, HEARTBEAT_TTL
from tests.redis_servers import (
    RedisServer,
    require_redis_server,
)

TOTAL = 20_000
FAST_JOBS = ("--max-jobs", "50")


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[tuple[RedisServer, Site]]:
    """A redis-server of this test's own, with an fsync-always AOF."""
    require_redis_server()
    server = RedisServer(appendonly=True).start()
    place = Site(server.url, new_prefix(), tmp_path, drop_keys=False)
    try:
        yield server, place
    finally:
        try:
            await place.close()
        finally:
            server.close()


def stop_all(workers: list[Child]) -> None:
    """SIGTERM every worker and check each exits 0."""
    for worker in workers:
        worker.signal(signal.SIGTERM)
    for worker in workers:
        worker.assert_exits_cleanly()


def finish_producers(producers: list[tuple[Child, Path]]) -> list[str]:
    """Wait for the producers to exit 0; the ids they published, all distinct."""
    for child, _ in producers:
        child.expect("published", timeout=60)
        child.assert_exits_cleanly()
    ids = read_ids(path for _, path in producers)
    assert len(ids) == len(set(ids))
    return ids


def start_producers(site: Site, total: int) -> list[tuple[Child, Path]]:
    half = total // 2
    return [
        site.producer("p0", half, "--batch", "200"),
        site.producer("p1", total - half, "--batch", "200"),
    ]


async def all_in_ledger(site: Site, ids: list[str], timeout: float) -> float:
    """Wait until every id is in the ledger; the failure names what is missing."""
    expected = set(ids)
    try:
        return await until(lambda: expected <= site.ledger.ids(), timeout, "", poll=0.05)
    except AssertionError:
        missing = sorted(expected - site.ledger.ids())
        raise AssertionError(
            f"{len(missing)} of {len(expected)} published ids not in the ledger after "
            f"{timeout}s, e.g. {missing[:5]}"
        ) from None


@pytest.mark.slow
async def test_every_message_is_handled_exactly_once_by_four_worker_processes(
    site: Site,
) -> None:
    workers = [site.worker(f"w{i}", *FAST_JOBS) for i in range(4)]
    published = finish_producers(start_producers(site, TOTAL))
    assert len(published) == TOTAL

    await all_in_ledger(site, published, timeout=45)
    await site.client().join(timeout=10)
    stop_all(workers)

    counts = site.ledger.counts()
    assert set(counts) == set(published)
    assert {i: n for i, n in counts.items() if n != 1} == {}
    assert {line.attempt for line in site.ledger.lines} == {1}
    assert {line.member for line in site.ledger.lines} == {"w0", "w1", "w2", "w3"}
    assert await site.processed() == TOTAL


@pytest.mark.slow
async def test_sigkilled_worker_loses_nothing_and_its_work_moves_within_the_ttl(
    site: Site,
) -> None:
    workers = [site.worker(f"w{i}", *FAST_JOBS) for i in range(4)]
    victim = workers[1]
    survivors = [w for w in workers if w is not victim]
    producers = start_producers(site, TOTAL)
    client = site.client()
    redis = site.redis()
    inbox = f"{site.prefix}:{{{APP}}}:inbox:w1"  # the layout of docs/design.md

    await until(lambda: len(site.ledger.refresh()) >= 5_000, 30, "5,000 ledger lines")
    victim.signal(signal.SIGKILL)
    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    assert victim.wait() == -signal.SIGKILL

    async def handed_over() -> bool:
        gone = all(m.id != "w1" for m in await client.members())
        return gone and not await redis.exists(inbox)

    bound = HEARTBEAT_TTL + CLEANUP_INTERVAL
    await until(handed_over, bound + 5, "w1 evicted and its inbox handed over")
    evicted_after = loop.time() - killed_at
    published = finish_producers(producers)
    await all_in_ledger(site, published, timeout=bound + 30)
    finished_after = loop.time() - killed_at
    stop_all(survivors)

    # Evicted once silent for the TTL (not before), at the next cleanup tick (plus slack).
    assert HEARTBEAT_TTL - 1.0 <= evicted_after <= bound + 1.5, evicted_after
    assert finished_after <= bound + 6.0, finished_after

    counts = site.ledger.counts()
    assert set(counts) == set(published)  # 0 lost, nothing unknown
    lines_of: dict[str, list[tuple[int, int]]] = {}
    for line in site.ledger.lines:
        lines_of.setdefault(line.id, []).append((line.pid, line.attempt))
    twice = {i: lines_of[i] for i, n in counts.items() if n > 1}
    for message_id, runs in twice.items():
        # A second run only for what the killed worker had in flight: one run by it, one
        # redelivery (attempt 2+) elsewhere.
        assert len(runs) == 2, (message_id, runs)
        by_victim = [r for r in runs if r[0] == victim.pid]
        others = [r for r in runs if r[0] != victim.pid]
        assert len(by_victim) == 1, (message_id, runs, victim.pid)
        assert others[0][1] >= 2, (message_id, runs)
    assert len(twice) <= 50  # at most its max_jobs were in flight


@pytest.mark.slow
async def test_sigterm_finishes_in_flight_handlers_and_hands_the_rest_over_at_once(
    site: Site,
) -> None:
    ttl = 6.0  # long, so that waiting for an eviction would show
    common = ("--slow", "0.5", "--max-jobs", "10", "--ttl", str(ttl))
    workers = [site.worker(f"w{i}", *common) for i in range(4)]
    victim = workers[0]
    published = await site.client().publish_many(TOPIC, list(range(80)))  # 20 each

    await until(
        lambda: any(line.pid == victim.pid for line in site.started.refresh()),
        10,
        "the victim started handlers",
    )
    begun = {line.id for line in site.started.refresh() if line.pid == victim.pid}
    done = {line.id for line in site.ledger.refresh() if line.pid == victim.pid}
    in_flight = begun - done  # started before this read of the ledger, not finished by it
    assert in_flight
    victim.signal(signal.SIGTERM)
    victim.assert_exits_cleanly()

    finished_by_victim = {line.id for line in site.ledger.refresh() if line.pid == victim.pid}
    assert in_flight <= finished_by_victim
    elapsed = await all_in_ledger(site, published, timeout=ttl)
    assert elapsed < ttl / 2, elapsed
    stop_all(workers[1:])

    started_by_victim = {line.id for line in site.started.refresh() if line.pid == victim.pid}
    assert started_by_victim == finished_by_victim  # no handler of it was cancelled
    assert finished_by_victim < set(published)  # it left work for the others
    assert site.ledger.counts() == Counter(published)
    assert {line.attempt for line in site.ledger.lines} == {1}
    assert await site.processed() == len(published)


@pytest.mark.slow
async def test_round_robin_rotation_is_shared_by_producer_processes(site: Site) -> None:
    total = 2_000
    strategy = ("--strategy", "round_robin")
    workers = [site.worker(f"w{i}", *strategy) for i in range(4)]
    # 1,001 + 999: a rotation per producer would give 501/500/500/499.
    producers = [
        site.producer("p0", 1_001, "--one-by-one", "--wait-go", *strategy),
        site.producer("p1", total - 1_001, "--one-by-one", "--wait-go", *strategy),
    ]
    for child, _ in producers:
        child.expect("ready")
    for child, _ in producers:
        child.send("go")
    windows = []
    for child, _ in producers:
        _, _, first, last = child.expect("published", timeout=60).split()
        windows.append((float(first), float(last)))
        child.assert_exits_cleanly()
    assert max(w[0] for w in windows) < min(w[1] for w in windows), "producers did not overlap"
    published = read_ids(path for _, path in producers)

    await all_in_ledger(site, published, timeout=30)
    await site.client().join(timeout=10)
    stop_all(workers)

    assert site.ledger.counts() == Counter(published)
    per_member = Counter(line.member for line in site.ledger.lines)
    assert set(per_member) == {"w0", "w1", "w2", "w3"}
    assert all(abs(count - total / 4) <= 2 for count in per_member.values()), per_member
    assert max(per_member.values()) - min(per_member.values()) <= 1, per_member


@pytest.mark.slow
async def test_handler_slower_than_its_lease_is_not_redelivered(site: Site) -> None:
    lease, slow = 1.0, 3.0
    common = ("--slow", str(slow), "--lease", str(lease))
    workers = [site.worker(f"w{i}", *common) for i in range(2)]
    client = site.client()
    message_id = await client.publish(TOPIC, "slow")

    await until(lambda: bool(site.started.of(message_id)), 10, "the handler started")
    ran_for = await until(lambda: bool(site.ledger.of(message_id)), slow + 10, "it finished")
    await client.join(timeout=10)  # a redelivery would still be in flight here
    assert ran_for > 2 * lease
    stop_all(workers)

    assert [(line.id, line.attempt) for line in site.started.of(message_id)] == [(message_id, 1)]
    assert [(line.id, line.attempt) for line in site.ledger.of(message_id)] == [(message_id, 1)]
    assert await site.processed() == 1
    assert await client.dead_letters() == []


@pytest.mark.slow
async def test_stopped_worker_loses_its_message_and_its_late_ack_is_refused(
    site: Site,
) -> None:
    holder = site.worker("a", "--slow", "5")
    client = site.client()
    message_id = await client.publish(TOPIC, "held")  # the only member: it goes to "a"
    await until(lambda: bool(site.started.of(message_id)), 10, "a started the handler")

    holder.signal(signal.SIGSTOP)
    try:
        other = site.worker("b")
        deadline = HEARTBEAT_TTL + CLEANUP_INTERVAL + 10
        await until(
            lambda: any(line.member == "b" for line in site.ledger.of(message_id)),
            deadline,
            "b handled the message after a was evicted",
        )
        assert [(line.member, line.attempt) for line in site.ledger.of(message_id)] == [("b", 2)]

        async def acked_by_b() -> bool:  # b records, then acks
            return await site.processed() == 1

        await until(acked_by_b, 10, "the ack of b counted")
    finally:
        holder.signal(signal.SIGCONT)

    # The handler of "a" finishes late and tries to ack; the ack must be refused.
    await until(
        lambda: any(line.member == "a" for line in site.ledger.of(message_id)),
        10,
        "a finished its handler after SIGCONT",
    )
    holder.signal(signal.SIGTERM)  # stop() waits for that handler's ack attempt to settle
    holder.assert_exits_cleanly()
    assert await site.processed() == 1
    assert await client.dead_letters() == []
    await client.join(timeout=10)
    stop_all([other])
    assert sorted((line.member, line.attempt) for line in site.ledger.of(message_id)) == [
        ("a", 1),
        ("b", 2),
    ]


async def publish_until_accepted(
    client: broker.Client, payloads: list[int], timeout: float
) -> list[str]:
    """Publish one batch, sending it again while it raises (Redis down); its ids."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await client.publish_many(TOPIC, payloads)
        except broker.BackendError:
            if loop.time() > deadline:
                raise


@pytest.mark.slow
async def test_redis_restart_under_load_loses_no_acknowledged_publish(
    own_redis: tuple[RedisServer, Site],
) -> None:
    server, site = own_redis
    # 50 handlers of 0.1 s: about 500 a second, so the restart finds a backlog to persist.
    worker = site.worker("w0", "--max-jobs", "50", "--slow", "0.1")
    client = site.client()
    total, batch = 2_000, 10
    old_pid = server.pid
    acked: list[str] = []

    async def publish_batch() -> None:
        start = len(acked)
        acked.extend(
            await publish_until_accepted(client, list(range(start, start + batch)), timeout=30)
        )

    while len(acked) < total // 2:
        await publish_batch()
    stats = await client.stats()
    assert sum(g.queued for g in stats.groups) > 0, "no backlog when Redis restarts"
    restart = asyncio.create_task(asyncio.to_thread(server.restart))
    while not restart.done():  # publishes keep going for the whole restart
        await publish_batch()
    await restart
    assert server.pid != old_pid
    await publish_batch()  # a publish after the restart succeeds
    while len(acked) < total:
        await publish_batch()

    await all_in_ledger(site, acked, timeout=30)
    stop_all([worker])
    assert set(acked) <= site.ledger.ids()
