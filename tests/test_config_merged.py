"""Config.merged: nested overrides of a config, validated like the original."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from multitask_unet import ConfigError
from multitask_unet.config import Config
from multitask_unet.registry import Registry

PARTS: Registry[type[Config]] = Registry("part")


class Part(Config):
    family: ClassVar[Registry[type[Config]]] = PARTS


@dataclass(frozen=True)
class Gear(Part):
    name: ClassVar[str] = "gear"
    teeth: int = 12
    size: tuple[int, ...] = (1, 1)


@dataclass(frozen=True)
class Spring(Part):
    name: ClassVar[str] = "spring"
    stiffness: float = 1.0


@dataclass(frozen=True)
class Inner(Config):
    a: int = 1
    b: int = 2
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Machine(Config):
    inner: Inner = field(default_factory=Inner)
    part: Part = field(default_factory=Gear)
    label: str | None = "m"


def test_a_nested_mapping_changes_only_the_keys_it_names() -> None:
    base = Machine(inner=Inner(a=4, b=5, extra={"x": 1, "y": {"z": 2}}))
    merged = base.merged({"inner": {"b": 7, "extra": {"y": {"w": 3}}}})
    assert merged.inner == Inner(a=4, b=7, extra={"x": 1, "y": {"z": 2, "w": 3}})
    assert merged.part == base.part and merged.label == "m"
    assert base.inner.b == 5  # the original is unchanged


def test_other_values_replace_the_old_ones() -> None:
    merged = Machine(part=Gear(size=(4, 5, 6))).merged({"part": {"size": [7]}, "label": None})
    assert merged.part == Gear(size=(7,)) and merged.label is None


def test_a_mapping_with_another_name_replaces_the_component() -> None:
    base = Machine(part=Gear(teeth=30))
    assert base.merged({"part": {"name": "gear", "size": [2]}}).part == Gear(30, (2,))
    # the gear's teeth would be no option of a spring: the spring starts from its defaults
    assert base.merged({"part": {"name": "spring", "stiffness": 2.0}}).part == Spring(2.0)


def test_empty_overrides_give_an_equal_config() -> None:
    assert Machine().merged({}) == Machine()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"inner": {"c": 1}}, "Inner has no option 'c'"),
        ({"inner": {"a": "x"}}, r"Inner\.a must be"),
        ({"part": {"name": "lever"}}, "lever"),
        ({"inner": 3}, "Inner must be built from a mapping"),
    ],
)
def test_invalid_merged_options_are_config_errors(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Machine().merged(overrides)


def test_overrides_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"Machine\.merged takes a mapping"):
        Machine().merged([("label", "x")])  # type: ignore[arg-type]
