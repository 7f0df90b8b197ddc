"""Configuration: one frozen object, built in code or from environment variables."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from typing import Literal, Self, get_args

from broker.errors import ConfigError, InvalidTopic
from broker.message import CONTENT_TYPES, ContentType, check_name

__all__ = ["Config", "Mode", "parse_duration"]

Mode = Literal["memory", "redis", "hybrid"]
STRATEGY_NAMES = ("round_robin", "consistent_hash", "weighted", "least_conn")

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: str, variable: str = "duration") -> float:
    """Seconds from ``30s``, ``1m``, ``500ms``, ``2h`` or a plain number of seconds."""
    match = _DURATION.fullmatch(value)
    if match is None:
        raise ConfigError(variable, value, "a duration such as 30s, 1m, 500ms or 2h")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    """Everything a client needs; every field has an environment variable (see `from_env`).

    Durations are seconds. Build variants with `replace`.
    """

    app_name: str = "app"
    mode: Mode = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    strategy: str = "round_robin"
    heartbeat_ttl: float = 30.0
    heartbeat_interval: float = 10.0
    cleanup_interval: float = 60.0
    lease: float = 30.0
    max_jobs: int = 10
    max_attempts: int = 3
    retry_backoff: float = 1.0
    retry_backoff_max: float = 300.0
    grace_period: float = 30.0
    max_payload_bytes: int = 1_048_576
    content_type: ContentType = "msgpack"
    prefix: str = "broker"
    pool_size: int = 50
    max_retries: int = 3
    cluster: bool = False

    def __post_init__(self) -> None:
        try:
            check_name(self.app_name, "app name")
        except InvalidTopic as exc:
            raise ConfigError("APP_NAME", self.app_name, exc.reason) from None
        self._check_choices()
        self._check_numbers()

    def _check_choices(self) -> None:
        if self.mode not in get_args(Mode):
            raise ConfigError("BROKER_MODE", self.mode, "memory, redis or hybrid")
        if self.strategy not in STRATEGY_NAMES:
            raise ConfigError("BALANCE_STRATEGY", self.strategy, ", ".join(STRATEGY_NAMES))
        if self.content_type not in CONTENT_TYPES:
            raise ConfigError("CONTENT_TYPE", self.content_type, "msgpack or json")

    def _check_numbers(self) -> None:
        for name in ("heartbeat_ttl", "heartbeat_interval", "cleanup_interval", "lease"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, getattr(self, name), "a duration above zero")
        if self.heartbeat_interval >= self.heartbeat_ttl:
            raise ConfigError(
                "heartbeat_interval",
                self.heartbeat_interval,
                f"a duration below the heartbeat TTL ({self.heartbeat_ttl}s)",
            )
        for name in ("max_jobs", "max_attempts", "max_payload_bytes", "pool_size"):
            if getattr(self, name) < 1:
                raise ConfigError(name, getattr(self, name), "an integer of 1 or more")
        for name in ("retry_backoff", "retry_backoff_max", "grace_period"):
            if getattr(self, name) < 0:
                raise ConfigError(name, getattr(self, name), "a duration of zero or more")

    def replace(self, **changes: object) -> Self:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read the configuration from environment variables; unset ones keep their default.

        Raises:
            ConfigError: a variable is set to a value it does not accept; the message names it.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for variable, (field, kind) in _VARIABLES.items():
            raw = env.get(variable)
            if raw is None or raw.strip() == "":
                continue
            values[field] = _parse(variable, raw.strip(), kind)
        if "redis_url" not in values and env.get("REDIS_ADDR"):
            values["redis_url"] = f"redis://{env['REDIS_ADDR'].strip()}/0"
        try:
            return cls(**values)  # type: ignore[arg-type]
        except ConfigError as exc:
            raise ConfigError(_env_name(exc.variable), exc.value, exc.accepted) from None

    def describe(self) -> dict[str, str]:
        """The effective settings as strings, with any password in the Redis URL masked."""
        shown = {f.name: str(getattr(self, f.name)) for f in dataclasses.fields(self)}
        shown["redis_url"] = re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", self.redis_url)
        return shown


_VARIABLES: dict[str, tuple[str, str]] = {
    "APP_NAME": ("app_name", "str"),
    "BROKER_MODE": ("mode", "str"),
    "REDIS_URL": ("redis_url", "str"),
    "BALANCE_STRATEGY": ("strategy", "str"),
    "HEARTBEAT_TTL": ("heartbeat_ttl", "duration"),
    "HEARTBEAT_INTERVAL": ("heartbeat_interval", "duration"),
    "CLEANUP_TICKER": ("cleanup_interval", "duration"),
    "LEASE_DURATION": ("lease", "duration"),
    "MAX_JOBS": ("max_jobs", "int"),
    "MAX_ATTEMPTS": ("max_attempts", "int"),
    "RETRY_BACKOFF": ("retry_backoff", "duration"),
    "RETRY_BACKOFF_MAX": ("retry_backoff_max", "duration"),
    "GRACE_PERIOD": ("grace_period", "duration"),
    "MAX_PAYLOAD_BYTES": ("max_payload_bytes", "int"),
    "CONTENT_TYPE": ("content_type", "str"),
    "QUEUE_PREFIX": ("prefix", "str"),
    "QUEUE_REDIS_POOL_SIZE": ("pool_size", "int"),
    "QUEUE_REDIS_MAX_RETRIES": ("max_retries", "int"),
    "REDIS_CLUSTER": ("cluster", "bool"),
}


def _env_name(field: str) -> str:
    for variable, (name, _) in _VARIABLES.items():
        if name == field:
            return variable
    return field


def _parse(variable: str, raw: str, kind: str) -> object:
    if kind == "duration":
        return parse_duration(raw, variable)
    if kind == "bool":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(variable, raw, "true or false")
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(variable, raw, "a whole number such as 10") from None
    return raw.lower() if variable in ("BROKER_MODE", "BALANCE_STRATEGY") else raw
