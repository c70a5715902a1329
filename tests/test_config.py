from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import pytest

from multitask_unet import ConfigError
from multitask_unet.config import Config
from multitask_unet.registry import Registry

SHAPES: Registry[type[Config]] = Registry("shape")


class Shape(Config):
    family: ClassVar[Registry[type[Config]]] = SHAPES


@dataclass(frozen=True)
class Box(Shape):
    name: ClassVar[str] = "box"
    size: tuple[int, ...] = (1, 1, 1)


@dataclass(frozen=True)
class Ball(Shape):
    name: ClassVar[str] = "ball"
    radius: float = 1.0


@dataclass(frozen=True)
class Scene(Config):
    shapes: dict[str, Shape] = field(default_factory=dict)
    main: Shape = field(default_factory=Box)
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    mode: Literal["fast", "exact"] = "fast"
    note: str | None = None
    nested: tuple[tuple[int, ...], ...] = ()


SCENE = Scene(
    shapes={"a": Box((2, 3, 4)), "b": Ball(0.5)},
    main=Ball(2.0),
    spacing=(0.5, 0.5, 3.0),
    mode="exact",
    nested=((1, 2), (3,)),
)


@pytest.mark.parametrize("fmt", ["dict", "json", "yaml", "file_json", "file_yaml"])
def test_round_trip(fmt: str, tmp_path) -> None:
    if fmt == "dict":
        back = Scene.from_dict(SCENE.to_dict())
    elif fmt == "json":
        back = Scene.from_json(SCENE.to_json())
    elif fmt == "yaml":
        back = Scene.from_yaml(SCENE.to_yaml())
    else:
        path = tmp_path / ("scene.json" if fmt == "file_json" else "scene.yaml")
        SCENE.save(path)
        back = Scene.load(path)
    assert back == SCENE
    assert isinstance(back.shapes["b"], Ball) and isinstance(back.main, Ball)


def test_family_members_carry_their_name() -> None:
    assert SCENE.to_dict()["main"] == {"name": "ball", "radius": 2.0}
    assert Shape.from_dict({"name": "box", "size": [5]}) == Box((5,))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"spacng": [1, 1, 1]}, "Did you mean 'spacing'"),
        ({"spacing": [1, 1]}, "must have 3 items"),
        ({"spacing": "1,1,1"}, "must be a list"),
        ({"mode": "slow"}, "must be one of 'fast', 'exact'"),
        ({"main": {"name": "cube"}}, "Unknown shape 'cube'"),
        ({"main": {"name": "box", "radius": 1}}, "Box has no option 'radius'"),
        ({"nested": [[1, "x"]]}, r"Scene.nested\[0\]\[1\] must be a whole number"),
        ({"note": 3}, "note"),
    ],
)
def test_invalid_input_is_named(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Scene.from_dict(data)


def test_frozen_and_replace() -> None:
    with pytest.raises(AttributeError):
        SCENE.mode = "fast"  # type: ignore[misc]
    changed = SCENE.replace(mode="fast")
    assert changed.mode == "fast" and changed.main == SCENE.main
    with pytest.raises(ConfigError):
        SCENE.replace(colour="red")


def test_missing_file_is_named(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Scene.load(tmp_path / "nope.yaml")


@dataclass(frozen=True)
class Grid(Config):
    spacing: tuple[float, ...]
    labels: tuple[int, ...]
    order: int = 1


def test_missing_required_options_are_named() -> None:
    with pytest.raises(ConfigError, match=r"Grid needs 'spacing', 'labels' \(no default\)"):
        Grid.from_dict({"order": 3})
    assert Grid.from_dict({"spacing": [1.0], "labels": [0, 1]}).labels == (0, 1)


def test_a_plan_without_labels_is_refused_not_given_the_studys() -> None:
    from multitask_unet.data.planning import PreprocessingConfig

    plan = {"target_spacing": [1.0, 1.0, 1.0], "normalization": [{"scheme": "zscore"}]}
    with pytest.raises(ConfigError, match="PreprocessingConfig needs 'labels'"):
        PreprocessingConfig.from_dict(plan)
    assert PreprocessingConfig.from_dict({**plan, "labels": [0, 1, 2, 3]}).labels == (0, 1, 2, 3)


def test_merged_changes_only_the_nested_keys_it_names() -> None:
    merged = SCENE.merged({"shapes": {"a": {"size": [9]}, "c": {"name": "ball"}}, "note": "x"})
    assert merged.shapes == {"a": Box((9,)), "b": Ball(0.5), "c": Ball()}
    assert (merged.main, merged.spacing, merged.note) == (SCENE.main, SCENE.spacing, "x")
    assert SCENE.shapes["a"] == Box((2, 3, 4))  # the original is unchanged
    assert SCENE.merged({}) == SCENE


def test_merged_with_another_name_replaces_the_component() -> None:
    # the ball's radius would be no option of a box: the box starts from its defaults
    assert SCENE.merged({"main": {"name": "box", "size": [2]}}).main == Box((2,))
    assert SCENE.merged({"main": {"name": "ball", "radius": 3.0}}).main == Ball(3.0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"main": {"size": [1]}}, "Ball has no option 'size'"),
        ({"spacing": [1, 2]}, "must have 3 items"),
        ({"main": {"name": "cube"}}, "Unknown shape 'cube'"),
        ([("note", "x")], r"Scene\.merged takes a mapping"),
    ],
)
def test_merged_checks_like_from_dict(overrides, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SCENE.merged(overrides)
