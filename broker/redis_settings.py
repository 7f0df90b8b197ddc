"""The Redis connection from environment variables: ``redis_url`` composed from its parts
(address, db, user, password, TLS files), and the balancer variables that may only repeat the
queue's values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from broker.errors import ConfigError

__all__ = ["check_balancer", "compose_url", "mask"]

_TLS_QUERY = {
    "REDIS_TLS_CA_FILE": "ssl_ca_certs",
    "REDIS_TLS_CERT_FILE": "ssl_certfile",
    "REDIS_TLS_KEY_FILE": "ssl_keyfile",
}
_TLS_OPTIONS = (*_TLS_QUERY, "REDIS_TLS_VERIFY")
_URL_PARTS = (
    "REDIS_ADDR",
    "QUEUE_REDIS_ADDR",
    "QUEUE_REDIS_DB",
    "REDIS_USERNAME",
    "REDIS_PASSWORD",
    "QUEUE_REDIS_PASSWORD",
    "REDIS_TLS",
    *_TLS_OPTIONS,
)


def mask(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    # Up to the last "@", so a password written with an unquoted "@" is masked whole.
    return re.sub(r"(//[^:/@]*:).*@", r"\1***@", url)


def compose_url(parsed: Mapping[str, object]) -> str | None:
    """The Redis URL composed from the parsed variables, or None if none of its parts is set.

    Raises:
        ConfigError: a part is set together with ``REDIS_URL``, or the TLS settings conflict.
    """
    given = [variable for variable in _URL_PARTS if variable in parsed]
    if not given:
        return None
    if "REDIS_URL" in parsed:
        variable = given[0]
        raise ConfigError(
            variable,
            "***" if variable.endswith("PASSWORD") else parsed[variable],
            "no value while REDIS_URL is set: put the address, db, user, password and TLS "
            "files in REDIS_URL (rediss://user:password@host:6379/0?ssl_ca_certs=/ca.pem), "
            "or unset REDIS_URL and use the separate variables",
        )
    address = _first(parsed, "QUEUE_REDIS_ADDR", "REDIS_ADDR") or "127.0.0.1:6379"
    user = quote(_first(parsed, "REDIS_USERNAME") or "", safe="")
    password = _first(parsed, "QUEUE_REDIS_PASSWORD", "REDIS_PASSWORD")
    auth = f"{user}@" if user else ""
    if password is not None:
        auth = f"{user}:{quote(password, safe='')}@"
    scheme, query = _tls(parsed)
    return f"{scheme}://{auth}{address}/{parsed.get('QUEUE_REDIS_DB', 0)}{query}"


def _first(parsed: Mapping[str, object], *variables: str) -> str | None:
    for variable in variables:
        if variable in parsed:
            return str(parsed[variable])
    return None


def _tls(parsed: Mapping[str, object]) -> tuple[str, str]:
    options = [variable for variable in _TLS_OPTIONS if variable in parsed]
    if not parsed.get("REDIS_TLS", bool(options)):
        if options:
            raise ConfigError(
                options[0], parsed[options[0]], "no value while REDIS_TLS=false, or REDIS_TLS=true"
            )
        return "redis", ""
    if "REDIS_TLS_KEY_FILE" in parsed and "REDIS_TLS_CERT_FILE" not in parsed:
        raise ConfigError(
            "REDIS_TLS_KEY_FILE",
            parsed["REDIS_TLS_KEY_FILE"],
            "a key set together with REDIS_TLS_CERT_FILE, the client certificate it belongs to",
        )
    query = {name: parsed[variable] for variable, name in _TLS_QUERY.items() if variable in parsed}
    if parsed.get("REDIS_TLS_VERIFY") is False:
        query |= {"ssl_cert_reqs": "none", "ssl_check_hostname": "false"}
    return "rediss", "?" + urlencode(query, safe="/", quote_via=quote) if query else ""


def check_balancer(parsed: Mapping[str, object], prefix: str, url: str) -> None:
    """Check that ``BALANCER_PREFIX`` / ``_REDIS_ADDR`` / ``_REDIS_DB`` repeat the queue's.

    Raises:
        ConfigError: one of them differs from the queue's value.
    """
    split = urlsplit(url)
    host = split.hostname or ""
    queue: dict[str, tuple[object, str]] = {
        "BALANCER_PREFIX": (prefix, "QUEUE_PREFIX"),
        "BALANCER_REDIS_ADDR": (
            f"[{host}]:{split.port or 6379}" if ":" in host else f"{host}:{split.port or 6379}",
            "QUEUE_REDIS_ADDR, REDIS_ADDR or REDIS_URL",
        ),
        "BALANCER_REDIS_DB": (_url_db(split.path, split.query), "QUEUE_REDIS_DB or REDIS_URL"),
    }
    for variable, (value, source) in queue.items():
        if variable in parsed and parsed[variable] != value:
            raise ConfigError(
                variable,
                parsed[variable],
                f"no value, or the queue's own {value!r} (from {source}): the balancer's state "
                "lives with the queue and one Lua script updates both, so it cannot differ; "
                f"unset {variable} or change {source} instead",
            )


def _url_db(path: str, query: str) -> int:
    db = parse_qs(query).get("db") or [path.strip("/") or "0"]
    return int(db[0]) if db[0].isdigit() else 0
