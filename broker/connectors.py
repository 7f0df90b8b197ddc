"""The backend registry: URL scheme -> connector.

Built-in schemes are named here as ``module:attribute`` and imported on first use, so ``import
broker`` loads no driver. Another package adds a scheme without touching this code, either in
code with `register_backend` or through an entry point of the ``broker.backends`` group whose
name is the scheme and whose value is the connector (``mybackend.connect:connector``)::

    [project.entry-points."broker.backends"]
    nats = "broker_nats:connect"

A scheme registered in code wins over an entry point, which wins over a built-in one.
"""

from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, entry_points
from urllib.parse import urlsplit

from broker.backend import Connector
from broker.errors import InvalidArgument, MissingDependency

__all__ = ["ENTRY_POINT_GROUP", "backend_scheme", "get_connector", "register_backend", "schemes"]

ENTRY_POINT_GROUP = "broker.backends"

_REDIS = "broker.backends.redis.connector:connect_redis"
_HYBRID = "broker.backends.hybrid.connector:connect_hybrid"
_BUILT_IN: dict[str, str] = {
    "memory": "broker.backends.memory:connect_memory",
    "redis": _REDIS,
    "rediss": _REDIS,
    "unix": _REDIS,
    "redis+cluster": _REDIS,
    "rediss+cluster": _REDIS,
    "hybrid+redis": _HYBRID,
    "hybrid+rediss": _HYBRID,
    "hybrid+unix": _HYBRID,
    "hybrid+redis+cluster": _HYBRID,
    "hybrid+rediss+cluster": _HYBRID,
}
# The optional package each built-in module needs: (import name, extra).
_NEEDS = {_REDIS: ("redis", "redis"), _HYBRID: ("redis", "redis")}
_registered: dict[str, Connector] = {}


def register_backend(scheme: str, connector: Connector) -> None:
    """Make ``scheme://...`` URLs build their backend with ``connector`` (in this process).

    Raises:
        InvalidArgument: ``scheme`` is not a URL scheme (letters, digits, ``+``, ``-``, ``.``,
            starting with a letter).
    """
    _check_scheme(scheme)
    _registered[scheme.lower()] = connector


def schemes() -> list[str]:
    """Every scheme a URL may use here: built-in, from entry points and registered."""
    return sorted({*_BUILT_IN, *_entry_points(), *_registered})


def backend_scheme(url: str) -> str:
    """The scheme of a backend URL, lower-cased.

    Raises:
        InvalidArgument: ``url`` has no scheme.
    """
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if not scheme:
        raise InvalidArgument("url", url, f"a URL with a scheme: one of {', '.join(schemes())}")
    return scheme


def get_connector(url: str) -> Connector:
    """The connector for ``url``'s scheme.

    Raises:
        InvalidArgument: no backend is known for the scheme (the message lists the known ones).
        MissingDependency: the backend needs an optional package that is not installed.
    """
    scheme = backend_scheme(url)
    if scheme in _registered:
        return _registered[scheme]
    found = _entry_points()
    if scheme in found:
        connector: Connector = found[scheme].load()
        return connector
    if scheme not in _BUILT_IN:
        raise InvalidArgument(
            "url", _scheme_only(url), f"a URL whose scheme is one of {', '.join(schemes())}"
        )
    return _load(_BUILT_IN[scheme], scheme)


def _load(target: str, scheme: str) -> Connector:
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        package, extra = _NEEDS.get(target, (exc.name or module_name, "all"))
        missing = exc.name or ""
        if missing.split(".")[0] != package and not module_name.startswith(missing):
            raise  # a bug in the backend, not a missing package
        raise MissingDependency(f"a {scheme}:// backend", package, extra) from exc
    connector: Connector = getattr(module, attribute)
    return connector


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name.lower(): ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _check_scheme(scheme: str) -> None:
    if not (
        scheme[:1].isascii()
        and scheme[:1].isalpha()
        and all(c.isascii() and (c.isalnum() or c in "+-.") for c in scheme)
    ):
        raise InvalidArgument(
            "scheme", scheme, "letters, digits, '+', '-' and '.', starting with a letter"
        )


def _scheme_only(url: str) -> str:
    # Never echo a URL that may carry a password.
    return url.split("://", 1)[0] + "://..."
