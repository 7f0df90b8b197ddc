"""The ``broker worker`` command in real processes on Redis: tasks, max_jobs, SIGTERM, events."""

from __future__ import annotations

import signal
from collections import Counter

import broker
from tests.processes.harness import APP, Child, Site, until

MAX_JOBS = 3


def start_worker(site: Site, name: str, *extra: str, slow: float = 0.0) -> Child:
    """``python -m broker.cli worker tests.processes.app_module:app`` on the site's Redis."""
    env = {
        "APP_NAME": APP,
        "REDIS_URL": site.url,
        "QUEUE_PREFIX": site.prefix,
        "HEARTBEAT_TTL": "3s",
        "HEARTBEAT_INTERVAL": "200ms",
        "CLEANUP_TICKER": "500ms",
        "GRACE_PERIOD": "20s",
        "BROKER_TEST_LEDGER": str(site.ledger_path),
        "BROKER_TEST_STARTED": str(site.started_path),
        "BROKER_TEST_EVENTS": str(site.tmp / "events"),
        "BROKER_TEST_SLOW": str(slow),
    }
    args = ["--log-format", "json", "worker", "tests.processes.app_module:app", "--mode", "redis"]
    child = Child(name, "broker.cli", [*args, *extra], site.tmp / f"{name}.log", env=env)
    site.children.append(child)
    return child


async def members(site: Site) -> int:
    return len(await site.client().members(broker.TASK_GROUP))


async def test_worker_command_runs_tasks_within_max_jobs_and_drains_on_sigterm(
    site: Site,
) -> None:
    first = start_worker(site, "w1", "--max-jobs", str(MAX_JOBS), slow=0.4)
    await until(lambda: _members_are(site, 1), 20, "the worker joined")
    producer = broker.App(site.client())
    ids = await producer.enqueue_many("WORK", list(range(30)))

    await until(lambda: len(site.started.refresh()) >= 2 * MAX_JOBS, 20, "tasks started")
    first.signal(signal.SIGTERM)
    first.assert_exits_cleanly()
    started = {line.id for line in site.started.refresh()}
    finished = {line.id for line in site.ledger.refresh()}
    assert started == finished  # every handler that began finished: nothing was cancelled
    assert finished < set(ids)  # and it left the rest queued
    assert max(int(line.member) for line in site.started.lines) == MAX_JOBS

    log = first.log.read_text()
    assert "broker worker" in log
    assert '"level":"info"' in log  # structured (JSON) logs

    second = start_worker(site, "w2", "--max-jobs", "10")
    await until(lambda: set(site.ledger.ids()) == set(ids), 30, "the rest handled by w2")
    assert site.ledger.counts() == Counter(ids)  # each task exactly once across both
    second.signal(signal.SIGTERM)
    second.assert_exits_cleanly()


async def _members_are(site: Site, count: int) -> bool:
    return await members(site) == count


async def test_events_reach_listeners_in_three_processes_but_not_a_late_one(site: Site) -> None:
    redis = site.redis()
    channel = f"{site.prefix}:channel:event:ping"

    async def listening(count: int) -> bool:
        [(_, subscribed)] = await redis.pubsub_numsub(channel)
        return bool(subscribed == count)

    listeners = [start_worker(site, f"l{i}") for i in range(3)]
    await until(lambda: listening(3), 20, "three listeners subscribed")
    sender = broker.App(site.client())
    for n in range(20):
        assert await sender.broadcast("ping", f"early{n}") == 3
    await until(lambda: len(_events(site)) == 60, 20, "3 x 20 events")

    late = start_worker(site, "late")
    await until(lambda: listening(4), 20, "the late listener subscribed")
    for n in range(5):
        await sender.broadcast("ping", f"late{n}")
    await until(lambda: len(_events(site)) == 80, 20, "4 x 5 more events")
    by_pid: dict[int, list[str]] = {}
    for text, pid in _events(site):
        by_pid.setdefault(pid, []).append(text)
    assert sorted(by_pid[late.pid]) == sorted(f"late{n}" for n in range(5))
    for child in listeners:
        assert Counter(by_pid[child.pid]) == Counter(
            [f"early{n}" for n in range(20)] + [f"late{n}" for n in range(5)]
        )
    for child in [*listeners, late]:
        child.signal(signal.SIGTERM)
    for child in [*listeners, late]:
        child.assert_exits_cleanly()


def _events(site: Site) -> list[tuple[str, int]]:
    path = site.tmp / "events"
    if not path.exists():
        return []
    return [
        (text, int(pid))
        for text, pid in (line.split(" ") for line in path.read_text().splitlines())
    ]
