"""The mode of a prefix: redis and hybrid clients store messages differently, so one prefix
serves one mode. The first client records its mode; a client of the other mode is refused."""

from __future__ import annotations

from typing import Any

from broker.backends.redis.connection import translate_errors
from broker.backends.redis.entries import decode_text
from broker.backends.redis.keys import Keys
from broker.errors import ConfigError

__all__ = ["claim_mode"]


async def claim_mode(redis: Any, keys: Keys, mode: str) -> None:
    """Record ``mode`` for the prefix, or check it matches the one recorded.

    Raises:
        ConfigError: a client of another mode uses this prefix (naming both modes and what to
            change).
    """
    with translate_errors("check the prefix's mode"):
        if await redis.set(keys.mode, mode, nx=True):
            return
        found = decode_text(await redis.get(keys.mode) or mode)
    if found != mode:
        raise ConfigError(
            "BROKER_MODE",
            mode,
            f"{found!r}: prefix {keys.prefix!r} on this Redis is used in {found} mode, whose "
            f"messages a {mode} client would never see. Set BROKER_MODE={found}, or "
            f"QUEUE_PREFIX to a prefix of its own (or delete the key {keys.mode!r} once no "
            f"{found} client runs)",
        )
