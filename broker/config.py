"""Configuration: one frozen object, built in code or from environment variables."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import Literal, Self, cast, get_args
from urllib.parse import urlsplit

from broker.errors import ConfigError, InvalidTopic
from broker.message import CONTENT_TYPES, ContentType, check_name
from broker.redis_settings import check_balancer, compose_url, mask

__all__ = ["Config", "Mode", "parse_duration"]

Mode = Literal["memory", "redis", "hybrid"]
STRATEGY_NAMES = ("round_robin", "consistent_hash", "weighted", "least_conn")

log = logging.getLogger("broker")
_REDIS_URL = "redis://127.0.0.1:6379/0"

_NUMBER = r"\d+(?:\.\d+)?"
# Units largest first, each at most once: 7d, 2h, 1m30s, 1.5s, 500ms, 1h2m3s4ms; or seconds.
_DURATION = re.compile(
    rf"(?:(?P<d>{_NUMBER})d)?(?:(?P<h>{_NUMBER})h)?(?:(?P<m>{_NUMBER})m(?!s))?(?:(?P<s>{_NUMBER})s)?"
    rf"(?:(?P<ms>{_NUMBER})ms)?|(?P<plain>{_NUMBER})"
)
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "plain": 1.0}


def parse_duration(value: str, variable: str = "duration") -> float:
    """Seconds from ``30s``, ``1m30s``, ``1.5s``, ``500ms``, ``2h``, ``7d`` or plain seconds.

    Raises:
        ConfigError: ``value`` is not such a duration; the message names ``variable``.
    """
    match = _DURATION.fullmatch(value.strip())
    if match is None or not any(match.groups()):
        raise ConfigError(variable, value, "a duration such as 30s, 1m30s, 1.5s, 500ms or 2h")
    return sum(float(n) * _UNITS[unit] for unit, n in match.groupdict().items() if n is not None)


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    """Everything a client needs; every field has an environment variable (see `from_env`).

    Durations are seconds. Build variants with `replace`. ``heartbeat_interval`` left at 0
    becomes a third of ``heartbeat_ttl`` (and follows it through `replace`).

    ``url`` names the backend (``memory://``, ``redis://host:6379/0``, ``rediss://...``,
    ``redis+cluster://...``, ``hybrid+redis://...``, or a plug-in's scheme). When it is set it
    decides ``mode``, ``redis_url`` and ``cluster`` for the built-in schemes (setting one of
    them to something else is an error); unset, ``backend_url`` is composed from them.
    """

    app_name: str = "app"
    url: str | None = None
    mode: Mode = "memory"
    redis_url: str = _REDIS_URL
    strategy: str = "round_robin"
    heartbeat_ttl: float = 30.0
    heartbeat_interval: float = 0.0
    cleanup_interval: float = 60.0
    lease: float = 30.0
    max_jobs: int = 10
    max_attempts: int = 3
    retry_backoff: float = 1.0
    retry_backoff_max: float = 300.0
    grace_period: float = 30.0
    groups_cache: float = 1.0
    group_retention: float = 7 * 86400.0
    max_payload_bytes: int = 1_048_576
    content_type: ContentType = "msgpack"
    prefix: str = "broker"
    pool_size: int = 50
    cluster: bool = False
    _derived_interval: bool = dataclasses.field(
        default=False, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        try:
            check_name(self.app_name, "name")
        except InvalidTopic as exc:
            accepted = f"1-200 characters of letters, digits and ._-:/ ({exc.reason})"
            raise ConfigError("APP_NAME", self.app_name, accepted) from None
        if self.url is not None:
            self._follow_url(self.url)
        if self.heartbeat_interval == 0:
            object.__setattr__(self, "heartbeat_interval", self.heartbeat_ttl / 3)
            object.__setattr__(self, "_derived_interval", True)
        self._check_choices()
        self._check_numbers()

    def _follow_url(self, url: str) -> None:
        derived = url_settings(url)
        if derived is None:
            return
        given = {"mode": self.mode, "redis_url": self.redis_url, "cluster": self.cluster}
        for name, value in derived.items():
            if given[name] not in (value, _DEFAULTS[name]):
                shown = mask(str(given[name])) if name == "redis_url" else given[name]
                raise ConfigError(
                    name,
                    shown,
                    f"{mask(str(value)) if name == 'redis_url' else value!r} (from url "
                    f"{mask(url)}), or leave it unset: url decides it",
                )
            object.__setattr__(self, name, value)

    @property
    def backend_url(self) -> str:
        """The URL of the backend: ``url``, or composed from ``mode``, ``redis_url`` and
        ``cluster``."""
        if self.url is not None:
            return self.url
        if self.mode == "memory":
            return "memory://"
        scheme, rest = self.redis_url.split("://", 1)
        if self.cluster:
            scheme += "+cluster"
        return f"hybrid+{scheme}://{rest}" if self.mode == "hybrid" else f"{scheme}://{rest}"

    def _check_choices(self) -> None:
        if self.mode not in get_args(Mode):
            raise ConfigError("BROKER_MODE", self.mode, "memory, redis or hybrid")
        if self.strategy not in STRATEGY_NAMES:
            raise ConfigError("BALANCE_STRATEGY", self.strategy, ", ".join(STRATEGY_NAMES))
        if self.content_type not in CONTENT_TYPES:
            raise ConfigError("CONTENT_TYPE", self.content_type, "msgpack or json")

    def _check_numbers(self) -> None:
        for name in (
            "heartbeat_ttl",
            "heartbeat_interval",
            "cleanup_interval",
            "lease",
            "group_retention",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(name, getattr(self, name), "a duration above zero")
        if self.heartbeat_interval >= self.heartbeat_ttl:
            raise ConfigError(
                "heartbeat_interval",
                self.heartbeat_interval,
                f"a duration below the heartbeat TTL ({self.heartbeat_ttl:g}s), "
                "or unset for a third of it",
            )
        for name in ("max_jobs", "max_attempts", "max_payload_bytes", "pool_size"):
            if getattr(self, name) < 1:
                raise ConfigError(name, getattr(self, name), "an integer of 1 or more")
        for name in ("retry_backoff", "retry_backoff_max", "grace_period", "groups_cache"):
            if getattr(self, name) < 0:
                raise ConfigError(name, getattr(self, name), "a duration of zero or more")

    def replace(self, **changes: object) -> Self:
        """A copy with some fields changed (validated again); a derived heartbeat interval
        is derived again from the new TTL."""
        if self._derived_interval and "heartbeat_interval" not in changes:
            changes["heartbeat_interval"] = 0.0
        if changes.get("url") is not None:  # a new url decides these again
            for name, value in _DEFAULTS.items():
                changes.setdefault(name, value)
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read the configuration from environment variables; unset ones keep their default.

        The mode comes from ``BROKER_MODE`` or from the pair ``QUEUE_TYPE`` / ``BALANCER_TYPE``
        (memory/memory is memory, redis/redis is redis, redis/memory is hybrid; one alone means
        both). The Redis connection comes either from ``REDIS_URL`` or from its parts
        (``QUEUE_REDIS_ADDR`` or ``REDIS_ADDR``, ``QUEUE_REDIS_DB``, ``REDIS_USERNAME``,
        ``QUEUE_REDIS_PASSWORD`` or ``REDIS_PASSWORD``, ``REDIS_TLS*``), composed into
        ``redis_url``; setting both ``REDIS_URL`` and a part is an error, never a silent merge.
        ``BALANCER_PREFIX`` / ``BALANCER_REDIS_ADDR`` / ``BALANCER_REDIS_DB`` may only repeat the
        queue's values: the balancer's state lives with the queue.

        Raises:
            ConfigError: a variable is set to a value it does not accept; the message names it.
        """
        env = os.environ if environ is None else environ
        parsed = {
            variable: _parse(variable, raw, kind)
            for variable, (_, kind) in _VARIABLES.items()
            if (raw := env.get(variable)) is not None and raw.strip()
        }
        values = {
            field: parsed[variable]
            for variable, (field, _) in _VARIABLES.items()
            if field is not None and variable in parsed
        }
        if (mode := _mode(parsed)) is not None:
            values["mode"] = mode
        if (url := compose_url(parsed)) is not None:
            values["redis_url"] = url
        if "BROKER_URL" in parsed:
            _check_with_url(str(parsed["BROKER_URL"]), values)
        _warn_ignored(parsed)
        try:
            config = cls(**values)  # type: ignore[arg-type]
        except ConfigError as exc:
            raise ConfigError(_env_name(exc.variable), exc.value, exc.accepted) from None
        check_balancer(parsed, config.prefix, config.redis_url)
        return config

    def describe(self) -> dict[str, str]:
        """The effective settings as strings (durations as ``1.5s``), with any password in the
        Redis URL masked."""
        shown = {f.name: _show(getattr(self, f.name)) for f in dataclasses.fields(self) if f.init}
        shown["redis_url"] = mask(self.redis_url)
        shown["url"] = mask(self.backend_url)
        return shown


_DEFAULTS: dict[str, object] = {"mode": "memory", "redis_url": _REDIS_URL, "cluster": False}


def url_settings(url: str) -> dict[str, object] | None:
    """The ``mode``, ``redis_url`` and ``cluster`` a built-in backend URL stands for, or None
    for a scheme of a plug-in.

    Raises:
        ConfigError: ``url`` has no scheme.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or not scheme:
        raise ConfigError("url", mask(url), _ACCEPTED["backend"])
    if scheme == "memory":
        return {"mode": "memory"}
    mode: Mode = "redis"
    if scheme.startswith("hybrid+"):
        mode, scheme = "hybrid", scheme.removeprefix("hybrid+")
    cluster = scheme.endswith("+cluster")
    scheme = scheme.removesuffix("+cluster")
    if scheme not in ("redis", "rediss", "unix"):
        return None
    return {"mode": mode, "redis_url": f"{scheme}://{rest}", "cluster": cluster}


# A kind is how `_parse` reads a value: a name below, or the tuple of accepted words.
_Kind = str | tuple[str, ...]
_BACKENDS = ("memory", "redis")

# Variables without a field are composed: into `mode` by `_mode`, into `redis_url` by
# `compose_url`, or only checked, by `check_balancer` (both in `broker.redis_settings`).
_VARIABLES: dict[str, tuple[str | None, _Kind]] = {
    "APP_NAME": ("app_name", "str"),
    "BROKER_URL": ("url", "backend"),
    "BROKER_MODE": ("mode", get_args(Mode)),
    "QUEUE_TYPE": (None, _BACKENDS),
    "BALANCER_TYPE": (None, _BACKENDS),
    "REDIS_URL": ("redis_url", "url"),
    "REDIS_ADDR": (None, "address"),
    "QUEUE_REDIS_ADDR": (None, "address"),
    "QUEUE_REDIS_DB": (None, "db"),
    "REDIS_USERNAME": (None, "str"),
    "REDIS_PASSWORD": (None, "secret"),
    "QUEUE_REDIS_PASSWORD": (None, "secret"),
    "REDIS_TLS": (None, "bool"),
    "REDIS_TLS_CA_FILE": (None, "str"),
    "REDIS_TLS_CERT_FILE": (None, "str"),
    "REDIS_TLS_KEY_FILE": (None, "str"),
    "REDIS_TLS_VERIFY": (None, "bool"),
    "BALANCER_PREFIX": (None, "str"),
    "BALANCER_REDIS_ADDR": (None, "address"),
    "BALANCER_REDIS_DB": (None, "db"),
    "BALANCE_STRATEGY": ("strategy", STRATEGY_NAMES),
    "HEARTBEAT_TTL": ("heartbeat_ttl", "duration"),
    "HEARTBEAT_INTERVAL": ("heartbeat_interval", "duration"),
    "CLEANUP_TICKER": ("cleanup_interval", "duration"),
    "LEASE_DURATION": ("lease", "duration"),
    "MAX_JOBS": ("max_jobs", "int"),
    "MAX_ATTEMPTS": ("max_attempts", "int"),
    "RETRY_BACKOFF": ("retry_backoff", "duration"),
    "RETRY_BACKOFF_MAX": ("retry_backoff_max", "duration"),
    "GRACE_PERIOD": ("grace_period", "duration"),
    "GROUPS_CACHE": ("groups_cache", "duration"),
    "GROUP_RETENTION": ("group_retention", "duration"),
    "MAX_PAYLOAD_BYTES": ("max_payload_bytes", "int"),
    "CONTENT_TYPE": ("content_type", CONTENT_TYPES),
    "QUEUE_PREFIX": ("prefix", "str"),
    "QUEUE_REDIS_POOL_SIZE": ("pool_size", "int"),
    "QUEUE_REDIS_MAX_RETRIES": (None, "str"),
    "REDIS_CLUSTER": ("cluster", "bool"),
}
# (queue type, balancer type) of each mode.
_PAIRS: dict[Mode, tuple[str, str]] = {
    "memory": ("memory", "memory"),
    "redis": ("redis", "redis"),
    "hybrid": ("redis", "memory"),
}
_ADDRESS = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9._-]+):(\d{1,5})", re.ASCII | re.IGNORECASE)
_ACCEPTED = {
    "bool": "true or false",
    "int": "a whole number such as 10",
    "db": "a database number of 0 or more",
    "address": "host:port with a numeric port, such as redis:6379",
    "backend": "a backend URL such as memory://, redis://host:6379/0, rediss://host:6379/0, "
    "redis+cluster://host:7000, hybrid+redis://host:6379/0 or a plug-in's scheme://...",
    "url": "a Redis URL such as redis://host:6379/0, rediss://user:password@host:6379/0 "
    "or unix:///run/redis.sock",
}


# Accepted without effect, so that deployments setting them keep starting: variable -> why.
_IGNORED = {
    "QUEUE_REDIS_MAX_RETRIES": "a command that hits a dropped connection is not re-sent (it may "
    "have run); the next call reconnects and worker loops retry with backoff",
}
_warned: set[str] = set()


def _warn_ignored(parsed: Mapping[str, object]) -> None:
    for variable, why in _IGNORED.items():
        if variable in parsed and variable not in _warned:
            _warned.add(variable)
            log.warning("%s is set but has no effect and is ignored: %s", variable, why)


def _check_with_url(url: str, values: Mapping[str, object]) -> None:
    derived = url_settings(url) or {}
    for field, value in values.items():
        if field in _DEFAULTS and derived.get(field) != value:
            variable = "REDIS_URL or its parts" if field == "redis_url" else _env_name(field)
            shown = mask(str(value)) if field == "redis_url" else value
            raise ConfigError(
                variable,
                shown,
                f"no value while BROKER_URL is set (BROKER_URL={mask(url)} names the backend "
                "and its connection), or the same value BROKER_URL implies",
            )


def _show(value: object) -> str:
    return f"{value:g}s" if isinstance(value, float) else str(value)  # every float is a duration


def _env_name(field: str) -> str:
    for variable, (name, _) in _VARIABLES.items():
        if name == field:
            return variable
    return field


def _parse(variable: str, raw: str, kind: _Kind) -> object:
    if kind == "secret":
        return raw  # a password is taken as written, spaces included
    text = raw.strip()
    if isinstance(kind, tuple):
        if text.lower() not in kind:
            raise ConfigError(variable, text, _one_of(kind))
        return text.lower()
    if kind == "duration":
        return parse_duration(text, variable)
    if kind == "backend":
        try:
            url_settings(text)
        except ConfigError:
            raise ConfigError(variable, mask(text), _ACCEPTED["backend"]) from None
        return text
    if kind not in _PARSERS:
        return text
    try:
        return _PARSERS[kind](text)
    except ValueError:
        shown = mask(text) if kind == "url" else text
        raise ConfigError(variable, shown, _ACCEPTED[kind]) from None


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _db(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ValueError(text)
    return int(text)


def _address(text: str) -> str:
    match = _ADDRESS.fullmatch(text)
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise ValueError(text)
    return f"{match.group(1).lower()}:{int(match.group(2))}"


def _url(text: str) -> str:
    split = urlsplit(text)
    _ = split.port  # raises ValueError for a port that is not a number
    if split.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(text)
    if split.scheme != "unix" and not re.fullmatch(r"/?\d*", split.path):
        raise ValueError(text)
    return text


_PARSERS: dict[str, Callable[[str], object]] = {
    "bool": _bool,
    "int": int,
    "db": _db,
    "address": _address,
    "url": _url,
}


def _one_of(words: tuple[str, ...]) -> str:
    return ", ".join(words[:-1]) + " or " + words[-1]


def _mode(parsed: Mapping[str, object]) -> Mode | None:
    queue = cast("str | None", parsed.get("QUEUE_TYPE"))
    balancer = cast("str | None", parsed.get("BALANCER_TYPE"))
    if queue is None and balancer is None:
        return None
    declared = cast("Mode | None", parsed.get("BROKER_MODE"))
    # Unset halves follow BROKER_MODE when it is set, else the other half.
    queue_default, balancer_default = _PAIRS[declared] if declared else (balancer, queue)
    pair = (queue or queue_default or "", balancer or balancer_default or "")
    modes = {p: m for m, p in _PAIRS.items()}
    if pair not in modes:
        raise ConfigError(
            "QUEUE_TYPE/BALANCER_TYPE",
            "/".join(pair),
            "memory/memory (memory mode), redis/redis (redis) or redis/memory (hybrid): "
            "a Redis balancer keeps its state next to a Redis queue, so it needs QUEUE_TYPE=redis",
        )
    mode = modes[pair]
    if declared is not None and declared != mode:
        raise ConfigError(
            "BROKER_MODE",
            declared,
            f"{mode}, the mode of a {pair[0]} queue (QUEUE_TYPE) with a {pair[1]} balancer "
            "(BALANCER_TYPE); or leave BROKER_MODE unset",
        )
    return mode
