"""The total-queue checker of the fault suite, and the faults it injects into processes.

Every id whose publish returned (the producers' id files) is accounted for against the ledger
the workers append to (a file: it survives any process the test kills) as handled once,
handled more than once, or lost. More than once is allowed only for an id that a killed or
stopped worker had started (its line in the started file); lost is never allowed.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.processes.harness import Child, Site, until

DRAIN_TIMEOUT = 30.0


@dataclass
class Account:
    """Where each published id ended up after a drain."""

    published: int
    once: set[str] = field(default_factory=set)
    more: dict[str, int] = field(default_factory=dict)
    lost: set[str] = field(default_factory=set)
    unexplained: dict[str, int] = field(default_factory=dict)  # more than once, no excuse
    unknown: set[str] = field(default_factory=set)  # handled, its publish never returned

    def check(self) -> None:
        """Fail on any lost id and any duplicate not excused by a killed worker."""
        assert not self.lost, f"{len(self.lost)} of {self.published} lost, e.g. {self.sample()}"
        assert not self.unexplained, f"run twice, no worker was killed: {self.unexplained}"

    def sample(self) -> list[str]:
        return sorted(self.lost)[:5]


class Faults:
    """The pids a test killed or stopped (their in-flight ids may run twice), and the ids
    started before a Redis outage ended (their ack may have failed with it)."""

    def __init__(self) -> None:
        self.pids: set[int] = set()
        self.during_outage: set[str] = set()

    def outage_over(self, site: Site) -> None:
        """Redis is back: what started until now may have lost its ack to the outage."""
        self.during_outage |= {line.id for line in site.started.refresh()}

    def kill(self, child: Child) -> None:
        self.pids.add(child.pid)
        child.signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL

    def stop(self, child: Child) -> None:
        self.pids.add(child.pid)
        child.signal(signal.SIGSTOP)


def account(site: Site, published: Iterable[str], faults: Faults) -> Account:
    """Sort every published id by how often the ledger says it was handled."""
    ids = set(published)
    counts: Counter[str] = site.ledger.counts()
    excused = {line.id for line in site.started.refresh() if line.pid in faults.pids}
    excused |= faults.during_outage
    result = Account(published=len(ids), unknown=set(counts) - ids)
    for message_id in ids:
        n = counts.get(message_id, 0)
        if n == 0:
            result.lost.add(message_id)
        elif n == 1:
            result.once.add(message_id)
        else:
            result.more[message_id] = n
            if message_id not in excused:
                result.unexplained[message_id] = n
    return result


async def drained(
    site: Site, published: Iterable[str], faults: Faults, timeout: float = DRAIN_TIMEOUT
) -> Account:
    """Wait until every published id is in the ledger (or the timeout); then account."""
    ids = set(published)
    with contextlib.suppress(AssertionError):  # the account names what is missing
        await until(lambda: ids <= site.ledger.ids(), timeout, "drain", poll=0.05)
    return account(site, ids, faults)


async def settled(site: Site, timeout: float = 10.0) -> None:
    """Every counter of the prefix converges to what really waits: nothing queued, delayed or
    in flight once everything was handled (``join`` over all groups)."""
    await site.client().join(timeout=timeout, all_groups=True)


async def handled_more(site: Site, by: int, pid: int | None = None, timeout: float = 20) -> None:
    """Wait until the ledger grew by ``by`` lines (of process ``pid`` only, if given)."""

    def handled() -> int:
        return sum(1 for line in site.ledger.refresh() if pid is None or line.pid == pid)

    target = handled() + by
    await until(lambda: handled() >= target, timeout, f"{by} more handled (pid {pid})")


def read_published(paths: Iterable[Path]) -> list[str]:
    """Ids from producer id files (each appended only after its publish returned)."""
    ids = [i for path in paths if path.exists() for i in path.read_text().split()]
    assert len(ids) == len(set(ids)), "a producer recorded an id twice"
    return ids


def tcp_ports_of(pid: int) -> set[int]:
    """The local TCP ports of a process's sockets (from /proc: its fds, then the tcp table)."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            if cols[9] in inodes:
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


async def kill_connections(redis: Any, pid: int) -> int:
    """``CLIENT KILL ID`` every connection of process ``pid`` to this server; how many."""
    ports = tcp_ports_of(pid)
    own = await redis.client_id()
    killed = 0
    for entry in await redis.client_list():
        port = int(str(entry["addr"]).rsplit(":", 1)[1])
        if port in ports and int(entry["id"]) != own:
            killed += await redis.execute_command("CLIENT", "KILL", "ID", entry["id"])
    return killed
