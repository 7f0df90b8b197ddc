"""The Lua scripts, one file per atomic step in ``lua/``, loaded once per client."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

__all__ = ["Scripts"]

Call = Callable[[Sequence[str | bytes], Sequence[str | bytes | int | float]], Awaitable[Any]]
_ROUTING = ("dispatch", "release", "handover", "expire", "drain")
_PLAIN = (
    "push",
    "leased",
    "ack",
    "renew",
    "retry",
    "promote",
    "bury",
    "take_dead",
    "heartbeat",
    "leave",
    "join",
    "set_weight",
    "requeue",
    "hybrid_ack",
    "retire",
    "hybrid_publish",
    "forget_consumers",
    "keep_alive",
)


def _source(name: str) -> str:
    return (resources.files(__package__) / "lua" / f"{name}.lua").read_text()


class Scripts:
    """Every script registered on one Redis client (EVALSHA, loaded again after a restart).

    Routing scripts are prefixed with ``lib.lua``, the strategy code they share.
    """

    def __init__(self, client: Any) -> None:
        lib = _source("lib")
        self._calls: dict[str, Call] = {}
        for name in _ROUTING:
            self._register(client, name, f"{lib}\n{_source(name)}")
        for name in _PLAIN:
            self._register(client, name, _source(name))

    def _register(self, client: Any, name: str, text: str) -> None:
        sha = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
        execute = client.execute_command

        async def call(
            keys: Sequence[str | bytes], args: Sequence[str | bytes | int | float]
        ) -> Any:
            # EVALSHA straight through the client: redis-py's Script wrapper costs an import
            # and two tuple copies per call, which shows on a one-message publish
            try:
                return await execute("EVALSHA", sha, len(keys), *keys, *args)
            except NoScriptError:  # a restarted or new server: load it, once
                await client.script_load(text)
                return await execute("EVALSHA", sha, len(keys), *keys, *args)

        self._calls[name] = call

    def __getattr__(self, name: str) -> Call:
        try:
            return self._calls[name]
        except KeyError:
            raise AttributeError(name) from None
