"""The Redis backend: streams per member inbox, Lua scripts for every atomic step."""

from broker.backends.redis.channels import RedisChannels
from broker.backends.redis.connection import connect
from broker.backends.redis.dispatch import IN_SCRIPT, RedisDispatcher
from broker.backends.redis.keys import Keys
from broker.backends.redis.mode import claim_mode
from broker.backends.redis.queue import RedisQueue
from broker.backends.redis.registry import RedisRegistry
from broker.backends.redis.scripts import Scripts

__all__ = [
    "IN_SCRIPT",
    "Keys",
    "RedisChannels",
    "RedisDispatcher",
    "RedisQueue",
    "RedisRegistry",
    "Scripts",
    "claim_mode",
    "connect",
]
