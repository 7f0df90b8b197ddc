"""docs/design.md's Redis key table names exactly the keys `broker.backends.redis.keys` builds."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from broker.backends.redis.keys import GroupKeys, Keys

_PLACEHOLDERS = {"topic": "T", "member": "M", "name": "N"}
_DESIGN = Path(__file__).resolve().parent.parent / "docs" / "design.md"


def _built(obj: object) -> set[str]:
    keys: set[str] = set()
    for attr in dir(obj):
        if attr.startswith("_") or attr in {"prefix", "tag", "name"}:
            continue
        value = getattr(obj, attr)
        if isinstance(value, str):
            keys.add(value)
        elif inspect.ismethod(value):
            params = list(inspect.signature(value).parameters)
            if len(params) == 1 and params[0] in _PLACEHOLDERS:
                built = value(_PLACEHOLDERS[params[0]])
                if isinstance(built, str):
                    keys.add(built)
    return keys


def _documented() -> set[str]:
    text = _DESIGN.read_text()
    section = text[text.index("## Redis key layout") :]
    section = section[: section.index("\n## ", 4)]
    keys: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `P:"):
            first_cell = line.split("|")[1]
            keys.update(re.findall(r"`(P:[^`]+)`", first_cell))
    return keys


def test_the_design_key_table_matches_the_keys_the_code_builds() -> None:
    keys = Keys("P")
    group = keys.group("G")
    assert isinstance(group, GroupKeys)
    built = _built(keys) | _built(group)
    documented = _documented()
    assert built - documented == set(), "built but not in docs/design.md's key table"
    assert documented - built == set(), "in docs/design.md's key table but never built"
