"""The Redis backend: streams per member inbox, Lua scripts for every atomic step."""

from backends.redis.channels import RedisChannels
from backends.redis.connection import connect
from backends.redis.dispatch import IN_SCRIPT, RedisDispatcher
from backends.redis.keys import Keys
from backends.redis.mode import claim_mode
from backends.redis.queue import RedisQueue
from backends.redis.registry import RedisRegistry
from backends.redis.scripts import Scripts

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
