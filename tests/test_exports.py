"""The public surface: broker.__all__ exists, belongs to broker, and README lists it."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

import broker
import broker.errors
import broker.message
import broker.protocols

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_all_names_are_exported_and_public() -> None:
    for name in broker.__all__:
        assert hasattr(broker, name), name
    public = {n for n in dir(broker) if not n.startswith("_")}
    stray = {
        n
        for n in public - set(broker.__all__)
        if not isinstance(getattr(broker, n), types.ModuleType)
    }
    assert not stray, stray


def test_the_readme_table_names_exactly_the_public_names() -> None:
    table = README[
        README.index("<!-- public-names:start -->") : README.index("<!-- public-names:end -->")
    ]
    listed = set(re.findall(r"`([A-Za-z_]+)`", table.split("\n", 3)[3]))
    assert listed == set(broker.__all__), listed ^ set(broker.__all__)


@pytest.mark.parametrize(
    ("name", "module"), [("Envelope", broker.message), ("Queue", broker.protocols)]
)
def test_a_moved_name_still_resolves_with_a_warning(name: str, module: types.ModuleType) -> None:
    with pytest.warns(DeprecationWarning, match=f"{module.__name__}.{name}"):
        moved = getattr(broker, name)
    assert moved is getattr(module, name)
    assert name not in broker.__all__
    with pytest.raises(AttributeError, match="nothing_here"):
        _ = broker.nothing_here


def test_every_error_derives_from_broker_error() -> None:
    errors = [getattr(broker, n) for n in broker.__all__ if n.endswith(("Error", "Closed"))]
    errors += [broker.InvalidTopic, broker.PayloadTooLarge, broker.BackendUnavailable]
    errors += [broker.InvalidArgument, broker.MissingDependency]
    for error in errors:
        assert issubclass(error, broker.BrokerError), error


def test_the_error_tree_and_the_readme_name_every_error() -> None:
    listed = README[README.index("Errors all derive from") :].split("\n\n")[0]
    assert broker.errors.__doc__ is not None
    for name in broker.errors.__all__:
        assert name in broker.__all__, name
        if name != "BrokerError":
            assert f"── {name} " in broker.errors.__doc__, name
            assert f"`{name}`" in listed, name
