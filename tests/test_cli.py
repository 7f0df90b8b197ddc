"""The ``broker`` command, run in this process: configuration, errors, app loading."""

from __future__ import annotations

import logging

import pytest

import broker
from broker.cli import load_app, main


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
