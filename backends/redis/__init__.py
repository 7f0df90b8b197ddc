"""The Redis backend: streams per member inbox, Lua scripts for every atomic step."""

from broker.backends.redis.channels import RedisChannels
from broker.backends.redis.connection import connect, translate_errors
from broker.backends.redis.connector import RedisParts, connect_redis, redis_backend, redis_parts
from broker.backends.redis.dispatch import IN_SCRIPT, RedisDispatcher
from broker.backends.redis.entries import Malformed, create_group, decode_text, parse_entry
from broker.backends.redis.keys import CONSUMER_GROUP, GroupKeys, Keys
from broker.backends.redis.mode import claim_mode
from broker.backends.redis.queue import RedisQueue, encode_envelope
from broker.backends.redis.registry import RedisRegistry
from broker.backends.redis.scripts import Scripts

__all__ = [
    "CONSUMER_GROUP",
    "IN_SCRIPT",
    "GroupKeys",
    "Keys",
    "Malformed",
    "RedisChannels",
    "RedisDispatcher",
    "RedisParts",
    "RedisQueue",
    "RedisRegistry",
    "Scripts",
    "claim_mode",
    "connect",
    "connect_redis",
    "create_group",
    "decode_text",
    "encode_envelope",
    "parse_entry",
    "redis_backend",
    "redis_parts",
    "translate_errors",
]
