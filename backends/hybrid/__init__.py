"""Hybrid: the durable queue in Redis, balancing in this process.

Publishing appends to one stream per group and topic (``P:{G}:stream:T``). Each process is one
consumer of the stream's consumer group and reads in batches, so Redis gives single delivery
between processes; inside the process the local dispatcher (strategy over the in-process
registry) spreads the process's share over its members through a `MemoryQueue`. An entry stays
pending under the process until a member acks it; the process keeps its entries' idle time low,
and a live process claims (XAUTOCLAIM) entries idle longer than the heartbeat TTL, which is how
a dead process's work moves on. A process that closes gives its unfinished entries back at once.

An ack goes to Redis without being waited on while the entry's idle time was reset less than
half a TTL ago (no other process can have claimed it); after a longer pause it waits for Redis,
and an ack Redis refuses (the entry was claimed) is reported as a lost lease. An entry that is
malformed (a field missing or not of its type) is dead-lettered when it is read.
"""

from broker.backends.hybrid.dispatch import HybridDispatcher
from broker.backends.hybrid.queue import HybridQueue

__all__ = ["HybridDispatcher", "HybridQueue"]
