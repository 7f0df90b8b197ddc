"""`Config.from_env`: every variable of the contract (section 7), its composition and its errors."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, parse_url

import broker
import broker.config as config_module
from broker.config import _VARIABLES

LOCAL = "127.0.0.1:6379"

# Named in CONTRACT.md section 7 (the TLS and ACL settings are ours to name).
CONTRACT_VARIABLES = {
    "BROKER_MODE",
    "APP_NAME",
    "REDIS_ADDR",
    "REDIS_URL",
    "QUEUE_TYPE",
    "QUEUE_PREFIX",
    "QUEUE_REDIS_ADDR",
    "QUEUE_REDIS_DB",
    "QUEUE_REDIS_PASSWORD",
    "QUEUE_REDIS_POOL_SIZE",
    "QUEUE_REDIS_MAX_RETRIES",
    "BALANCER_TYPE",
    "BALANCER_PREFIX",
    "BALANCER_REDIS_ADDR",
    "BALANCER_REDIS_DB",
    "BALANCE_STRATEGY",
    "HEARTBEAT_TTL",
    "HEARTBEAT_INTERVAL",
    "CLEANUP_TICKER",
    "MAX_JOBS",
    "REDIS_USERNAME",
    "REDIS_PASSWORD",
    "REDIS_TLS",
}

# (variable, value, Config field, expected); extra variables a case needs go in EXTRA.
READS: list[tuple[str, str, str, object]] = [
    ("APP_NAME", "shop", "app_name", "shop"),
    ("BROKER_URL", "hybrid+redis://h:1/2", "mode", "hybrid"),
    ("BROKER_MODE", "Hybrid", "mode", "hybrid"),
    ("QUEUE_TYPE", "redis", "mode", "redis"),
    ("BALANCER_TYPE", "memory", "mode", "memory"),
    ("REDIS_URL", "rediss://u:pw@h:1/3", "redis_url", "rediss://u:pw@h:1/3"),
    ("REDIS_ADDR", "h:1", "redis_url", "redis://h:1/0"),
    ("QUEUE_REDIS_ADDR", "Redis.local:06380", "redis_url", "redis://redis.local:6380/0"),
    ("QUEUE_REDIS_DB", "2", "redis_url", f"redis://{LOCAL}/2"),
    ("REDIS_USERNAME", "u", "redis_url", f"redis://u@{LOCAL}/0"),
    ("REDIS_PASSWORD", "p@ss", "redis_url", f"redis://:p%40ss@{LOCAL}/0"),
    ("QUEUE_REDIS_PASSWORD", "a b", "redis_url", f"redis://:a%20b@{LOCAL}/0"),
    ("REDIS_TLS", "yes", "redis_url", f"rediss://{LOCAL}/0"),
    ("REDIS_TLS_CA_FILE", "/ca.pem", "redis_url", f"rediss://{LOCAL}/0?ssl_ca_certs=/ca.pem"),
    ("REDIS_TLS_CERT_FILE", "/c.pem", "redis_url", f"rediss://{LOCAL}/0?ssl_certfile=/c.pem"),
    (
        "REDIS_TLS_KEY_FILE",
        "/k.pem",
        "redis_url",
        f"rediss://{LOCAL}/0?ssl_certfile=/c.pem&ssl_keyfile=/k.pem",
    ),
    (
        "REDIS_TLS_VERIFY",
        "false",
        "redis_url",
        f"rediss://{LOCAL}/0?ssl_cert_reqs=none&ssl_check_hostname=false",
    ),
    ("BALANCER_PREFIX", "shop", "prefix", "shop"),
    ("BALANCER_REDIS_ADDR", "H:1", "redis_url", "redis://h:1/0"),
    ("BALANCER_REDIS_DB", "4", "redis_url", f"redis://{LOCAL}/4"),
    ("BALANCE_STRATEGY", "LEAST_CONN", "strategy", "least_conn"),
    ("HEARTBEAT_TTL", "1m", "heartbeat_ttl", 60.0),
    ("HEARTBEAT_INTERVAL", "500ms", "heartbeat_interval", 0.5),
    ("CLEANUP_TICKER", "2h", "cleanup_interval", 7200.0),
    ("LEASE_DURATION", "45", "lease", 45.0),
    ("MAX_JOBS", "4", "max_jobs", 4),
    ("MAX_ATTEMPTS", "7", "max_attempts", 7),
    ("RETRY_BACKOFF", "250ms", "retry_backoff", 0.25),
    ("RETRY_BACKOFF_MAX", "1m", "retry_backoff_max", 60.0),
    ("GRACE_PERIOD", "0s", "grace_period", 0.0),
    ("GROUPS_CACHE", "250ms", "groups_cache", 0.25),
    ("GROUP_RETENTION", "2d", "group_retention", 172800.0),
    ("MAX_PAYLOAD_BYTES", "2048", "max_payload_bytes", 2048),
    ("CONTENT_TYPE", "json", "content_type", "json"),
    ("QUEUE_PREFIX", "shop", "prefix", "shop"),
    ("QUEUE_REDIS_POOL_SIZE", "8", "pool_size", 8),
    ("REDIS_CLUSTER", "on", "cluster", True),
]
EXTRA = {
    "REDIS_TLS_KEY_FILE": {"REDIS_TLS_CERT_FILE": "/c.pem"},
    "BALANCER_PREFIX": {"QUEUE_PREFIX": "shop"},
    "BALANCER_REDIS_ADDR": {"QUEUE_REDIS_ADDR": "h:1"},
    "BALANCER_REDIS_DB": {"QUEUE_REDIS_DB": "4"},
}


# Accepted so that existing deployments keep starting, but without effect (a warning says so).
IGNORED = {"QUEUE_REDIS_MAX_RETRIES"}


def test_every_contract_variable_is_read_and_tested() -> None:
    assert set(_VARIABLES) >= CONTRACT_VARIABLES
    assert [variable for variable, *_ in READS] == list(dict.fromkeys(v for v, *_ in READS))
    assert {variable for variable, *_ in READS} | IGNORED == set(_VARIABLES)


def test_max_retries_is_accepted_ignored_and_warned_about_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(config_module, "_warned", set())
    assert "max_retries" not in {f.name for f in dataclasses.fields(broker.Config)}
    with caplog.at_level(logging.WARNING, logger="broker"):
        first = broker.Config.from_env({"QUEUE_REDIS_MAX_RETRIES": "5"})
        broker.Config.from_env({"QUEUE_REDIS_MAX_RETRIES": "5"})
    assert first == broker.Config()
    warnings = [
        r.getMessage() for r in caplog.records if "QUEUE_REDIS_MAX_RETRIES" in r.getMessage()
    ]
    assert len(warnings) == 1, warnings
    assert "no effect" in warnings[0]


def test_heartbeat_interval_defaults_to_a_third_of_the_ttl() -> None:
    assert broker.Config().heartbeat_interval == 10.0
    assert broker.Config.from_env({"HEARTBEAT_TTL": "5s"}).heartbeat_interval == pytest.approx(
        5 / 3
    )
    derived = broker.Config(heartbeat_ttl=6)
    assert derived.heartbeat_interval == 2.0
    assert derived.replace(heartbeat_ttl=3).heartbeat_interval == 1.0, "still derived"
    assert derived.replace(lease=5).heartbeat_interval == 2.0
    given = broker.Config(heartbeat_ttl=6, heartbeat_interval=1)
    assert given.replace(heartbeat_ttl=30).heartbeat_interval == 1.0, "kept when given"
    env = {"HEARTBEAT_TTL": "9s", "HEARTBEAT_INTERVAL": "1s"}
    assert broker.Config.from_env(env).heartbeat_interval == 1.0
    assert not any(name.startswith("_") for name in derived.describe())
    assert derived.describe()["heartbeat_interval"] == "2s"
    assert broker.Config(heartbeat_ttl=5).describe()["heartbeat_interval"] == "1.66667s"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("1m30s", 90.0),
        ("1.5s", 1.5),
        ("500ms", 0.5),
        ("2h", 7200.0),
        ("7d", 604800.0),
        ("1d12h", 129600.0),
        ("1h30m", 5400.0),
        ("1h2m3s4ms", 3723.004),
        ("1m", 60.0),
        ("45", 45.0),
        ("0.25", 0.25),
        (" 2m ", 120.0),
    ],
)
def test_durations_parse(text: str, seconds: float) -> None:
    assert broker.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "1w", "-5s", "1s1m", "1m1m", "1.s", "1 m", "ms", "1e3s"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(broker.ConfigError, match="1m30s"):
        broker.parse_duration(text, "LEASE_DURATION")


def test_a_bad_app_name_says_which_characters_are_allowed() -> None:
    with pytest.raises(broker.ConfigError) as info:
        broker.Config.from_env({"APP_NAME": "my app"})
    assert info.value.variable == "APP_NAME"
    assert "letters, digits and ._-:/" in str(info.value)
    assert "' '" in str(info.value)
    with pytest.raises(broker.ConfigError, match="letters, digits and"):
        broker.Config(app_name="shop{1}")


@pytest.mark.parametrize(("variable", "value", "field", "expected"), READS, ids=lambda v: str(v))
def test_each_variable_is_read(variable: str, value: str, field: str, expected: object) -> None:
    config = broker.Config.from_env({variable: value, **EXTRA.get(variable, {})})
    assert getattr(config, field) == expected


def test_unset_and_blank_variables_keep_the_defaults() -> None:
    blank = {variable: " " for variable in _VARIABLES}
    assert broker.Config.from_env({}) == broker.Config.from_env(blank) == broker.Config()


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({"QUEUE_TYPE": "memory", "BALANCER_TYPE": "memory"}, "memory"),
        ({"QUEUE_TYPE": "redis", "BALANCER_TYPE": "redis"}, "redis"),
        ({"QUEUE_TYPE": "redis", "BALANCER_TYPE": "memory"}, "hybrid"),
        ({"BALANCER_TYPE": "redis"}, "redis"),
        ({"QUEUE_TYPE": "memory"}, "memory"),
        ({"BROKER_MODE": "hybrid", "QUEUE_TYPE": "redis"}, "hybrid"),
        ({"BROKER_MODE": "hybrid", "BALANCER_TYPE": "memory"}, "hybrid"),
        ({"BROKER_MODE": "redis", "QUEUE_TYPE": "Redis", "BALANCER_TYPE": "REDIS"}, "redis"),
    ],
)
def test_mode_follows_queue_and_balancer_types(env: dict[str, str], mode: str) -> None:
    assert broker.Config.from_env(env).mode == mode


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({"REDIS_ADDR": "a:1", "QUEUE_REDIS_ADDR": "b:2"}, "redis://b:2/0"),
        ({"REDIS_PASSWORD": "one", "QUEUE_REDIS_PASSWORD": "two"}, f"redis://:two@{LOCAL}/0"),
        ({"QUEUE_REDIS_ADDR": "[::1]:6379"}, "redis://[::1]:6379/0"),
    ],
)
def test_queue_specific_variables_win(env: dict[str, str], url: str) -> None:
    assert broker.Config.from_env(env).redis_url == url


def test_composed_url_is_understood_by_redis_py() -> None:
    env = {
        "QUEUE_REDIS_ADDR": "h:1",
        "QUEUE_REDIS_DB": "2",
        "REDIS_USERNAME": "u",
        "QUEUE_REDIS_PASSWORD": "p@ss",
        "REDIS_TLS": "true",
        "REDIS_TLS_CA_FILE": "/ca.pem",
    }
    url = broker.Config.from_env(env).redis_url
    assert url.startswith("rediss://")
    kwargs = Redis.from_url(url).connection_pool.connection_kwargs
    assert {k: kwargs[k] for k in ("host", "port", "db", "username", "password")} == {
        "host": "h",
        "port": 1,
        "db": 2,
        "username": "u",
        "password": "p@ss",
    }
    assert kwargs["ssl_ca_certs"] == "/ca.pem"
    assert Redis.from_url(url).connection_pool.connection_class is SSLConnection


@pytest.mark.parametrize("secret", ["p@ss", "a:b/c?d#e%f&g=h", " spaced ", "üñí", "+plus"])
def test_any_password_and_user_survive_the_url(secret: str) -> None:
    env = {"REDIS_USERNAME": f"user:{secret}", "QUEUE_REDIS_PASSWORD": secret}
    kwargs = parse_url(broker.Config.from_env(env).redis_url)
    assert (kwargs.get("username"), kwargs.get("password")) == (f"user:{secret}".rstrip(), secret)


def test_tls_without_verification_builds_an_ssl_context() -> None:
    url = broker.Config.from_env({"REDIS_TLS_VERIFY": "false"}).redis_url
    pool = Redis.from_url(url).connection_pool
    assert pool.connection_class is SSLConnection
    connection = SSLConnection(**pool.connection_kwargs)
    assert connection.ssl_context.get().check_hostname is False


DURATION = "a duration such as 30s"
ADDRESS = "host:port with a numeric port"
DB = "a database number of 0 or more"
BALANCER = "the balancer's state lives with the queue"
BAD: list[tuple[dict[str, str], str, str]] = [
    ({"HEARTBEAT_TTL": "soon"}, "HEARTBEAT_TTL", DURATION),
    ({"LEASE_DURATION": "-5s"}, "LEASE_DURATION", DURATION),
    ({"RETRY_BACKOFF": "1w"}, "RETRY_BACKOFF", DURATION),
    ({"HEARTBEAT_TTL": "1s", "HEARTBEAT_INTERVAL": "2s"}, "HEARTBEAT_INTERVAL", "below"),
    ({"MAX_JOBS": "many"}, "MAX_JOBS", "a whole number"),
    ({"MAX_JOBS": "0"}, "MAX_JOBS", "an integer of 1 or more"),
    ({"QUEUE_REDIS_POOL_SIZE": "1.5"}, "QUEUE_REDIS_POOL_SIZE", "a whole number"),
    ({"REDIS_CLUSTER": "maybe"}, "REDIS_CLUSTER", "true or false"),
    ({"REDIS_TLS": "si"}, "REDIS_TLS", "true or false"),
    ({"REDIS_TLS_VERIFY": "2"}, "REDIS_TLS_VERIFY", "true or false"),
    ({"BROKER_MODE": "cloud"}, "BROKER_MODE", "memory, redis or hybrid"),
    ({"QUEUE_TYPE": "kafka"}, "QUEUE_TYPE", "memory or redis"),
    ({"BALANCER_TYPE": "etcd"}, "BALANCER_TYPE", "memory or redis"),
    ({"BALANCE_STRATEGY": "random"}, "BALANCE_STRATEGY", "weighted or least_conn"),
    ({"CONTENT_TYPE": "xml"}, "CONTENT_TYPE", "msgpack or json"),
    ({"QUEUE_REDIS_ADDR": "h"}, "QUEUE_REDIS_ADDR", ADDRESS),
    ({"QUEUE_REDIS_ADDR": "h:port"}, "QUEUE_REDIS_ADDR", ADDRESS),
    ({"REDIS_ADDR": "h:70000"}, "REDIS_ADDR", ADDRESS),
    ({"REDIS_ADDR": "redis://h:1"}, "REDIS_ADDR", ADDRESS),
    ({"BALANCER_REDIS_ADDR": ":6379"}, "BALANCER_REDIS_ADDR", ADDRESS),
    ({"QUEUE_REDIS_DB": "-1"}, "QUEUE_REDIS_DB", DB),
    ({"BALANCER_REDIS_DB": "one"}, "BALANCER_REDIS_DB", DB),
    ({"REDIS_URL": "http://h:1/0"}, "REDIS_URL", "a Redis URL such as redis://"),
    ({"REDIS_URL": "redis://h:port/0"}, "REDIS_URL", "a Redis URL such as redis://"),
    ({"REDIS_URL": "redis://h:1/db"}, "REDIS_URL", "a Redis URL such as redis://"),
    (
        {"QUEUE_TYPE": "memory", "BALANCER_TYPE": "redis"},
        "QUEUE_TYPE/BALANCER_TYPE",
        "redis/memory",
    ),
    ({"BROKER_MODE": "redis", "BALANCER_TYPE": "memory"}, "BROKER_MODE", "hybrid, the mode"),
    ({"BROKER_MODE": "memory", "QUEUE_TYPE": "redis"}, "BROKER_MODE", "hybrid, the mode"),
    ({"REDIS_URL": "redis://h:1/0", "QUEUE_REDIS_DB": "2"}, "QUEUE_REDIS_DB", "unset REDIS_URL"),
    ({"REDIS_URL": "redis://h:1/0", "REDIS_ADDR": "h:1"}, "REDIS_ADDR", "unset REDIS_URL"),
    ({"REDIS_TLS": "false", "REDIS_TLS_CA_FILE": "/ca"}, "REDIS_TLS_CA_FILE", "REDIS_TLS=true"),
    ({"REDIS_TLS_KEY_FILE": "/k.pem"}, "REDIS_TLS_KEY_FILE", "with REDIS_TLS_CERT_FILE"),
    ({"BALANCER_PREFIX": "other"}, "BALANCER_PREFIX", BALANCER),
    ({"BALANCER_REDIS_ADDR": "other:6379"}, "BALANCER_REDIS_ADDR", BALANCER),
    ({"QUEUE_REDIS_ADDR": "h:1", "BALANCER_REDIS_ADDR": "h:2"}, "BALANCER_REDIS_ADDR", "'h:1'"),
    ({"REDIS_URL": "redis://h:1/5", "BALANCER_REDIS_DB": "0"}, "BALANCER_REDIS_DB", "5"),
    ({"QUEUE_REDIS_DB": "1", "BALANCER_REDIS_DB": "2"}, "BALANCER_REDIS_DB", BALANCER),
]


@pytest.mark.parametrize(("env", "variable", "accepted"), BAD)
def test_bad_values_name_the_variable_and_what_it_accepts(
    env: dict[str, str], variable: str, accepted: str
) -> None:
    with pytest.raises(broker.ConfigError) as info:
        broker.Config.from_env(env)
    assert info.value.variable == variable
    assert str(info.value).startswith(f"{variable}=")
    assert accepted in str(info.value)


@pytest.mark.parametrize(
    "env",
    [
        {"REDIS_URL": "redis://user:s3cret@h:1/0"},
        {"REDIS_URL": "redis://:s3cret@h:1/0"},
        {"REDIS_URL": "rediss://user:s3cr@t@h:1/0?ssl_ca_certs=/ca.pem"},
        {"REDIS_USERNAME": "u", "REDIS_PASSWORD": "s3cret", "REDIS_ADDR": "h:1", "REDIS_TLS": "1"},
        {"QUEUE_REDIS_PASSWORD": "s3cr@t", "QUEUE_REDIS_ADDR": "h:1"},
    ],
)
def test_describe_masks_the_password(env: dict[str, str]) -> None:
    config = broker.Config.from_env(env)
    assert "s3cr" in config.redis_url
    shown = config.describe()
    assert "***@h" in shown["redis_url"]
    assert not any("s3cr" in value for value in shown.values())


@pytest.mark.parametrize(
    "env",
    [
        {"REDIS_URL": "redis://h:1/0", "QUEUE_REDIS_PASSWORD": "s3cret"},
        {"REDIS_URL": "http://user:s3cret@h:1/0"},
    ],
)
def test_errors_do_not_show_passwords(env: dict[str, str]) -> None:
    with pytest.raises(broker.ConfigError) as info:
        broker.Config.from_env(env)
    assert "s3cret" not in str(info.value)
