"""The ``broker`` command, in this process and from a shell: configuration, errors, output."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import uuid
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import broker
from broker.cli import _banner, load_app, main
from tests.conftest import _drop_prefix
from tests.redis_servers import require_redis_server, shared_redis_ok, shared_redis_url


@pytest.fixture(autouse=True)
def _root_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    """`broker worker` configures the root logger: give it one to change and put back."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)


def test_config_prints_the_effective_settings_with_the_password_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APP_NAME", "shop")
    monkeypatch.setenv("BROKER_MODE", "redis")
    monkeypatch.setenv("QUEUE_REDIS_ADDR", "cache.internal:6380")
    monkeypatch.setenv("QUEUE_REDIS_PASSWORD", "s3cret!")
    monkeypatch.setenv("MAX_JOBS", "7")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out
    assert "cache.internal:6380" in out
    assert "shop" in out
    assert "7" in out


def test_a_bad_variable_is_a_clear_error_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HEARTBEAT_TTL", "soon")
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert "HEARTBEAT_TTL" in err
    assert "30s" in err


def test_worker_refuses_a_target_that_is_not_an_app(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "broker.config:Config"]) == 2
    assert "not a broker.App" in capsys.readouterr().err
    assert main(["worker", "no_such_module_here:app"]) == 2
    assert "cannot import" in capsys.readouterr().err
    assert main(["worker", "missing-colon"]) == 2
    assert "module:attribute" in capsys.readouterr().err


def test_worker_targets_a_newcomer_types(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    name = f"app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("import broker\n\napp = broker.App.from_env()\n")
    monkeypatch.chdir(tmp_path.parent)
    monkeypatch.syspath_prepend(str(tmp_path))  # put back after, with the path load_app adds
    assert isinstance(load_app(f"{tmp_path.name}/{name}.py:app"), broker.App), "a file path"
    assert main(["worker", "../nowhere/worker:app"]) == 2
    assert "cannot import" in capsys.readouterr().err
    assert main(["worker", "examples/missing.py:app"]) == 2
    assert "no such file" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine was never awaited"
        (tmp_path / "async_main.py").write_text("async def main() -> None: ...\n")
        assert main(["worker", f"{tmp_path}/async_main.py:main"]) == 2
    assert "async function" in capsys.readouterr().err


def test_load_app_finds_the_examples_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend("examples")
    monkeypatch.setenv("APP_NAME", "shop")
    monkeypatch.setenv("MAX_JOBS", "3")
    app = load_app("worker:app")
    assert isinstance(app, broker.App)
    info = app.info()
    assert (info.app, info.mode, info.max_jobs) == ("shop", "memory", 3)
    assert info.tasks == ("NEW_ORDER",)
    assert info.requests == ("GET_USER_INFO",)
    assert info.events == ("user_events",)


def test_app_from_env_uses_the_one_loader() -> None:
    app = broker.App.from_env(
        {"APP_NAME": "billing", "MAX_JOBS": "4", "BALANCE_STRATEGY": "weighted"}
    )
    assert app.client.config.app_name == "billing"
    assert app.max_jobs == 4
    assert app.group == broker.TASK_GROUP  # tasks run once per deployment, whatever the app
    assert app.info().strategy == "weighted"
    with pytest.raises(broker.ConfigError, match="QUEUE_TYPE"):
        broker.App.from_env({"QUEUE_TYPE": "memory", "BALANCER_TYPE": "redis"})


# -- as a newcomer runs it from a shell --------------------------------------------------------


@pytest.fixture
async def redis_env(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, str]]:
    """BROKER_MODE=redis on the shared Redis under a prefix of this test's own (removed after)."""
    require_redis_server()
    url = shared_redis_url()
    if not shared_redis_ok(url):
        pytest.fail(f"no Redis answers at {url}")
    env = {
        "BROKER_MODE": "redis",
        "REDIS_URL": url,
        "QUEUE_PREFIX": f"test-cli-{uuid.uuid4().hex[:12]}",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env
    from broker.backends.redis import connect

    redis = connect(url)
    await _drop_prefix(redis, env["QUEUE_PREFIX"])
    await redis.aclose()


def run_cli(*args: str, env: dict[str, str] | None = None, stdout: Any = subprocess.PIPE) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "broker", *args],
        env={**os.environ, **(env or {})},
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"broker {broker.__version__}"


@pytest.mark.parametrize("command", ["config", "stats"])
def test_a_closed_pipe_ends_quietly(command: str, redis_env: dict[str, str]) -> None:
    # `broker stats | head -1`, with a reader that has already gone: every write hits EPIPE.
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w") as closed:
        done = run_cli(command, env=redis_env, stdout=closed)
    assert done.stderr == ""
    assert done.returncode == 141


def test_stats_columns_align_for_long_names(
    redis_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    long_topic = "orders.created.with.a.rather.long.name"

    async def publish() -> None:
        async with broker.client_from_env() as client:
            await client.publish(long_topic, 1)
            await client.publish("t", 2)

    asyncio.run(publish())
    assert main(["stats"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = lines[1 : lines.index(next(line for line in lines if "live members" in line))]
    header, *rows = table
    assert len(rows) == 2
    # nobody handles these topics: each row ends with a note past the numbers
    assert all(row.endswith("  no live member") for row in rows), table
    assert {len(line.removesuffix("  no live member")) for line in table} == {len(header)}
    assert any(row.startswith(long_topic + " ") for row in rows)
    column = header.index("queued") + len("queued")  # numbers right-aligned under their header
    assert all(row[column - 1] == "1" for row in rows), table


@pytest.mark.parametrize("command", ["stats", "health"])
def test_stats_and_health_refuse_memory_mode(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BROKER_MODE", raising=False)
    assert main([command]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1, captured.err
    assert "BROKER_MODE=redis" in captured.err
    assert "hybrid" in captured.err
    assert "another process" in captured.err


@pytest.mark.parametrize("command", ["stats", "health"])
def test_an_unreachable_redis_is_one_error_line(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BROKER_MODE", "redis")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    assert main([command]) != 0
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert text.count("unreachable") == 1, text
    assert "127.0.0.1:1" in text


def test_a_bad_config_is_one_error_line_from_a_shell() -> None:
    done = run_cli("stats", env={"BROKER_MODE": "redis", "HEARTBEAT_TTL": "soon"})
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "broker: error: HEARTBEAT_TTL='soon' is not valid: expected a duration such as 30s, "
        "1m30s, 1.5s, 500ms or 2h"
    ]


def test_bad_options_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--log-level", "loud", "config"], ["worker", "worker:app", "--max-jobs", "0"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert "usage: broker" in err


def test_a_memory_worker_says_nothing_else_reaches_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend("examples")
    monkeypatch.delenv("BROKER_MODE", raising=False)
    assert "BROKER_MODE=redis" in _banner(load_app("worker:app"), "worker:app")


def test_stats_all_flags_a_group_nobody_runs_and_undeclare_retires_it(
    redis_env: dict[str, str],
) -> None:
    async def leave_a_group_behind() -> None:
        async with broker.client_from_env() as client:
            old = client.subscriber(group="old-app")

            @old.handler("orders")
            async def never(n: int) -> None: ...

            await old.start()
            await old.stop()
            await client.publish_many("orders", [1, 2, 3])

    asyncio.run(leave_a_group_behind())
    own = run_cli("stats", env={"APP_NAME": "shop"})
    assert own.returncode == 0, own.stderr
    assert "old-app" not in own.stdout  # another app's group: only with --all
    every = run_cli("stats", "--all", env={"APP_NAME": "shop"})
    row = next(line for line in every.stdout.splitlines() if line.startswith("orders "))
    assert row.split()[1:3] == ["old-app", "3"]
    assert row.endswith("no live member")
    done = run_cli("undeclare", "orders", "old-app")
    assert done.returncode == 0, done.stderr
    assert "3 waiting messages moved to its dead letters" in done.stdout
    after = run_cli("stats", "--all")
    row = next(line for line in after.stdout.splitlines() if line.startswith("orders "))
    assert row.split()[2:6] == ["0", "0", "0", "3"]  # queued 0, dead 3
    refused = run_cli("undeclare", "bad name", "old-app")
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
