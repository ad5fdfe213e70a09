"""snlu.core.schema: section checks name the full key path, also for nested dataclasses inside dicts, for a list
given where a mapping belongs, and for the top level of a file (key "")."""

from __future__ import annotations

import dataclasses

import pytest

from snlu.core.errors import ConfigError
from snlu.core.schema import check_section, join, on_load


@dataclasses.dataclass
class Inner:
    size: int = 1


@dataclasses.dataclass
class Outer:
    inner: Inner = dataclasses.field(default_factory=Inner)
    named: dict[str, Inner | None] = dataclasses.field(default_factory=dict)
    items: list[int] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if any(i < 0 for i in self.items):
            raise ValueError("items: must be >= 0")


@pytest.mark.parametrize("values, key, message", [
    ({"inner": {"sise": 2}}, "sec", "sec.inner.sise: unknown key; did you mean size? (valid: size)"),
    ({"named": {"a": {"sise": 2}}}, "sec", "sec.named.a.sise: unknown key; did you mean size? (valid: size)"),
    ({"named": {"a": {"sise": 2}}}, "", "named.a.sise: unknown key; did you mean size? (valid: size)"),
    ({"inner": [1, 2]}, "sec", "sec.inner: wrong type: "),
    ({"items": {"a": 1}}, "", "items: wrong type: "),
    ({"items": [1, -1]}, "sec", "sec.items: must be >= 0"),
    ({"items": [1, -1]}, "", "items: must be >= 0"),
    ([1], "", "file: expected a mapping, got list"),
])
def test_errors_name_the_key_path(values, key, message):
    with pytest.raises(ConfigError) as e:
        check_section(Outer, values, key)
    assert str(e.value).startswith(message)


def test_join_and_on_load():
    assert [join("a", "b"), join("", "b"), join("a", "")] == ["a.b", "b", "a"]
    assert on_load("clear") != on_load("saved_files")
    with pytest.raises(ValueError, match="on_load: expected clear or saved_files"):
        on_load("keep")
