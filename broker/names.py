"""Names the layers agree on: the balancing strategies and how a process or member is named.

Part of the core: imports nothing of this project but the core.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from typing import Literal, get_args

__all__ = ["STRATEGY_NAMES", "StrategyName", "member_id", "process_id"]

StrategyName = Literal["round_robin", "consistent_hash", "weighted", "least_conn"]
"""The built-in strategies (``least_connections`` is accepted as a synonym of ``least_conn``)."""

STRATEGY_NAMES: tuple[StrategyName, ...] = get_args(StrategyName)


def process_id() -> str:
    """``host-pid-random``: unique per call, readable in ``broker members`` and Redis."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:60] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


member_id = process_id
"""A new member's id (one per `Subscriber`): the same shape as a process id."""
