"""The public surface: everything in broker.__all__ exists and belongs to broker."""

from __future__ import annotations

from pathlib import Path

import broker
import broker.errors


def test_all_names_are_exported_and_public() -> None:
    for name in broker.__all__:
        assert hasattr(broker, name), name
    public = {n for n in dir(broker) if not n.startswith("_")}
    modules = {
        "app",
        "backends",
        "balancers",
        "clock",
        "events",
        "rpc",
        "sync",
        "cli",
        "client",
        "config",
        "errors",
        "factory",
        "handlers",
        "message",
        "names",
        "protocols",
        "redis_settings",
        "subscriber",
    }
    assert public - set(broker.__all__) <= modules, public - set(broker.__all__) - modules


def test_every_error_derives_from_broker_error() -> None:
    errors = [getattr(broker, n) for n in broker.__all__ if n.endswith(("Error", "Closed"))]
    errors += [broker.InvalidTopic, broker.PayloadTooLarge, broker.BackendUnavailable]
    errors += [broker.InvalidArgument, broker.MissingDependency]
    for error in errors:
        assert issubclass(error, broker.BrokerError), error


def test_the_error_tree_and_the_readme_name_every_error() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    listed = readme[readme.index("Errors all derive from") :].split("\n\n")[0]
    assert broker.errors.__doc__ is not None
    for name in broker.errors.__all__:
        assert name in broker.__all__, name
        if name != "BrokerError":
            assert f"── {name} " in broker.errors.__doc__, name
            assert f"`{name}`" in listed, name
