"""TrainConfig: sections, YAML round trips, strict keys, the old flat layout, example files."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import pytest

from multitask_unet.errors import ConfigError
from multitask_unet.training import (
    DataConfig,
    OptimizationConfig,
    OptimizerConfig,
    RuntimeConfig,
    TrainConfig,
)
from multitask_unet.training.config_migration import MOVED, RENAMED, new_place

EXAMPLES = Path(__file__).parents[2] / "examples"

SECTIONED = """
model: {preset: tiny_plain, head: ovr}
data:
  patch_size: [16, 32, 32]
  batch_size: 4
  class_weights: none
  augmentation: {p_rotation: 0.0}
optimization:
  optimizer: {name: adamw, lr: 0.001}
  epochs: 20
  iterations_per_epoch: 50
runtime:
  amp: "off"
  seed: 3
  val_every: 5
  time_limit_minutes: 30
  on_time_limit: fit
"""
FLAT = """
model: {preset: tiny_plain, head: ovr}
patch_size: [16, 32, 32]
batch_size: 4
weights_mode: none
augmentation: {p_rotation: 0.0}
optimizer: {name: adamw, lr: 0.001}
epochs: 20
iterations_per_epoch: 50
amp: "off"
seed: 3
val_every: 5
time_budget_minutes: 30
"""


def _quietly(text: str) -> TrainConfig:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return TrainConfig.from_yaml(text)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"model": {"preset": "tiny_plain", "head": None}, "optimization": {"epochs": 3}},
        {
            "model": {
                "encoder": {"name": "plain", "channels": [8, 16], "strides": [1, 2]},
                "decoder": {"name": "unet", "convs_per_stage": 1},
                "head_options": {"hidden": 8},
            }
        },
        {"model": {"preset": "tiny_plain", "heads": {"cls": {"name": "panda"}, "b": "ovr"}}},
        {
            "optimization": {"optimizer": {"name": "adamw", "lr": 0.001, "betas": [0.8, 0.95]}},
            "runtime": {"amp": "fp16", "time_limit_minutes": 5, "on_time_limit": "stop"},
        },
        {"optimization": {"loss": {"terms": {"seg": {"loss": "dice_ce"}}}}},
        {"data": {"augmentation": {"p_rotation": 0.0}, "patch_size": [32, 64, 64]}},
    ],
)
def test_yaml_round_trip(options: dict, tmp_path: Path) -> None:
    config = TrainConfig.from_dict(options)
    assert TrainConfig.from_yaml(config.to_yaml()) == config
    config.save(tmp_path / "c.yaml")
    assert TrainConfig.load(tmp_path / "c.yaml") == config
    assert list(config.to_dict()) == ["model", "data", "optimization", "runtime"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"epoch": 3},
            r"no option 'epoch'\. Did you mean 'optimization\.epochs'\? Valid options: "
            r"model, data, optimization, runtime",
        ),
        ({"on_time_limit": "fit"}, r"Did you mean 'runtime\.on_time_limit'"),
        ({"data": {"epochs": 3}}, r"'data\.epochs': epochs belongs in 'optimization\.epochs'"),
        ({"data": {"patchsize": [8, 8, 8]}}, "Did you mean 'patch_size'"),
        ({"optimization": {"optimizer": {"name": "adam"}}}, "'sgd', 'adamw'"),
        ({"optimization": {"epochs": 0}}, r"optimization\.epochs must be at least 1"),
        ({"runtime": {"amp": "fp8"}}, "amp must be one of"),
        ({"runtime": {"on_time_limit": "pause"}}, "on_time_limit"),
        ({"runtime": {"time_limit_minutes": 0}}, "must be positive"),
        ({"optimization": {"optimizer": {"momentum": 1.0}}}, "momentum"),
        ({"data": {"patch_size": [16, 16]}}, "3 items"),
        ({"runtime": {"val_overlap": 1.0}}, "val_overlap"),
        ({"data": {"class_weights": "uniform"}}, "class_weights"),
        ({"model": {"preset": "tiny"}}, "Did you mean 'tiny_plain'"),
        ({"model": {"head": "panda", "heads": {"cls": "ovr"}}}, "either 'head'.*or 'heads'"),
        ({"model": {"heads": {"cls": "ovr"}, "head_options": {"hidden": 8}}}, "head_options"),
        ({"model": {"heads": {"seg": "ovr"}}}, "Python identifiers"),
        ({"model": {"heads": {"cls": {"name": "panda", "hiden": 8}}}}, "Did you mean 'hidden'"),
        ({"model": {"head": "pnda"}}, "Did you mean 'panda'"),
        ({"model": {"preset": None}}, "model.encoder"),
        ({"model": {"encoder": "residul"}}, "Did you mean 'residual'"),
    ],
)
def test_invalid_options_name_the_problem(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(options)


def test_defaults_are_nnunets_recipe() -> None:
    config = TrainConfig()
    opt = config.optimization
    assert (opt.iterations_per_epoch, opt.epochs) == (250, 1000)
    assert opt.optimizer.grad_clip == 12.0 and opt.optimizer.poly_exponent == 0.9
    assert config.data.foreground_probability == pytest.approx(1 / 3)
    assert (config.model.head, config.model.heads) == ("panda", None)
    assert config.runtime.time_limit_minutes is None and config.runtime.on_time_limit == "fit"


def test_the_example_configs_load_in_the_new_layout() -> None:
    paths = sorted(EXAMPLES.glob("configs/*.yaml")) + sorted(EXAMPLES.glob("*/configs/*.yaml"))
    assert len(paths) >= 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        configs = {p.name: TrainConfig.load(p) for p in paths}
    demo = configs["demo.yaml"]
    assert demo.model.head == "panda" and demo.runtime.stop_minutes == 10


def test_the_old_flat_layout_loads_to_the_same_config_with_one_warning() -> None:
    with pytest.warns(DeprecationWarning) as caught:
        old = TrainConfig.from_yaml(FLAT)
    assert old == TrainConfig.from_yaml(SECTIONED)
    assert len(caught) == 1
    message = str(caught[0].message)
    for key in ("patch_size", "batch_size", "weights_mode", "augmentation", "seed", "val_every"):
        assert f"'{key}' moved to '{new_place(key)}'" in message
    assert "'epochs' moved to 'optimization.epochs'" in message
    assert "'amp' moved to 'runtime.amp'" in message
    assert (
        "'time_budget_minutes' moved to 'runtime.time_limit_minutes' with "
        "'runtime.on_time_limit: fit'" in message
    )
    assert caught[0].filename == __file__  # points at the caller, not the library


def test_every_section_option_has_an_old_flat_name() -> None:
    sections = {"data": DataConfig, "optimization": OptimizationConfig, "runtime": RuntimeConfig}
    new = {f.name: s for s, cls in sections.items() for f in dataclasses.fields(cls)}
    old = {RENAMED.get(k, k): s for k, s in MOVED.items()}  # weights_mode is class_weights now
    assert {**new, "time_budget_minutes": "runtime"} == {**old, "on_time_limit": "runtime"}


@pytest.mark.parametrize(
    ("old", "minutes", "mode"),
    [
        ({"time_budget_minutes": 30, "time_limit_minutes": None}, 30.0, "fit"),
        ({"time_limit_minutes": 10, "time_budget_minutes": None}, 10.0, "stop"),
        ({"time_limit_minutes": 0.0}, 0.0, "stop"),  # stop after the first epoch
        ({"time_limit_minutes": None, "time_budget_minutes": None}, None, "fit"),
    ],
)
def test_the_two_old_time_limits_become_one_with_its_mode(old, minutes, mode) -> None:
    with pytest.warns(DeprecationWarning, match="runtime.time_limit_minutes"):
        runtime = TrainConfig.from_dict(old).runtime
    assert (runtime.time_limit_minutes, runtime.on_time_limit) == (minutes, mode)


def test_both_old_time_limits_set_is_an_error_that_explains() -> None:
    with pytest.raises(ConfigError, match=r"both set.*one time limit.*'fit'.*'stop'"):
        TrainConfig.from_dict({"time_budget_minutes": 30, "time_limit_minutes": 40})


@pytest.mark.parametrize(
    "options",
    [
        {"epochs": 3, "optimization": {"epochs": 4}},
        {"seed": 1, "runtime": {"seed": 1}},
        {"time_budget_minutes": 3, "runtime": {"time_limit_minutes": 4}},
        {"time_limit_minutes": 3, "runtime": {"on_time_limit": "fit"}},
    ],
)
def test_an_old_key_beside_its_new_place_is_an_error(options: dict) -> None:
    with pytest.raises(ConfigError, match="both given"):
        TrainConfig.from_dict(options)


def test_old_and_new_keys_of_other_options_mix() -> None:
    with pytest.warns(DeprecationWarning, match="'epochs' moved"):
        config = TrainConfig.from_dict({"epochs": 3, "optimization": {"iterations_per_epoch": 4}})
    assert (config.optimization.epochs, config.optimization.iterations_per_epoch) == (3, 4)


def test_old_attribute_names_warn_and_read_the_sections() -> None:
    config = TrainConfig.from_yaml(SECTIONED)
    expected = {
        "epochs": 20,
        "patch_size": (16, 32, 32),
        "optimizer": OptimizerConfig(name="adamw", lr=0.001),
        "seed": 3,
        "amp": "off",
        "time_budget_minutes": 30.0,
        "time_limit_minutes": None,  # the old stop limit: not set
    }
    for name, value in expected.items():
        with pytest.warns(DeprecationWarning, match=f"'{name}' moved to"):
            assert getattr(config, name) == value
    with pytest.raises(AttributeError, match="no attribute 'epoch'"):
        config.epoch  # noqa: B018


def test_replace_merges_sections_and_migrates_old_names() -> None:
    config = TrainConfig.from_yaml(SECTIONED)
    changed = config.replace(runtime={"seed": 9}, data=DataConfig(batch_size=1))
    assert changed.runtime.seed == 9 and changed.runtime.amp == "off"  # the rest kept
    assert changed.data == DataConfig(batch_size=1)  # a section object replaces the section
    with pytest.warns(DeprecationWarning, match="'epochs' moved to 'optimization.epochs'"):
        old = config.replace(epochs=7, time_limit_minutes=0.5)
    assert old.optimization.epochs == 7 and old.optimization.iterations_per_epoch == 50
    assert (old.runtime.time_limit_minutes, old.runtime.on_time_limit) == (0.5, "stop")
    with pytest.raises(ConfigError, match="both given"):
        config.replace(epochs=7, optimization={"epochs": 8})


def test_merged_changes_nested_keys_and_keeps_the_rest() -> None:
    config = TrainConfig.from_yaml(SECTIONED)
    changed = config.merged(
        {
            "model": {"preset": "tiny_residual"},
            "optimization": {"optimizer": {"lr": 0.1}, "epochs": 1},
            "runtime": {"device": "cpu"},
        }
    )
    assert (changed.model.preset, changed.model.head) == ("tiny_residual", "ovr")
    assert changed.optimization.optimizer == OptimizerConfig(name="adamw", lr=0.1)
    assert (changed.optimization.epochs, changed.optimization.iterations_per_epoch) == (1, 50)
    assert (changed.runtime.device, changed.runtime.seed) == ("cpu", 3)
    assert changed.data == config.data
    with pytest.warns(DeprecationWarning, match="'epochs' moved to 'optimization.epochs'"):
        assert config.merged({"epochs": 7}).optimization.epochs == 7
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the sectioned layout merges without a warning
        config.merged({"runtime": {"seed": 1}})


def test_from_saved_reads_old_checkpoints_quietly() -> None:
    old = _quietly(FLAT).to_dict()
    flat = {**{k: v for s in ("data", "optimization", "runtime") for k, v in old[s].items()}}
    flat.pop("on_time_limit")
    flat["time_budget_minutes"] = flat.pop("time_limit_minutes")
    flat["weights_mode"] = flat.pop("class_weights")  # as old checkpoints name it
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert TrainConfig.from_saved({"model": old["model"], **flat}) == _quietly(FLAT)


def test_resumable_dict_ignores_cosmetic_options() -> None:
    a = TrainConfig.from_dict({"optimization": {"epochs": 10}, "runtime": {"progress": True}})
    b = TrainConfig.from_dict(
        {
            "optimization": {"epochs": 20},
            "data": {"num_workers": 2},
            "runtime": {"progress": False, "device": "cpu", "compile": "off", "val_every": 0,
                        "time_limit_minutes": 5, "on_time_limit": "stop"},
        }
    )  # fmt: skip
    assert a.resumable_dict() == b.resumable_dict()
    assert "optimization.iterations_per_epoch" in a.resumable_dict()
    assert a.resumable_dict() != TrainConfig(runtime=RuntimeConfig(seed=1)).resumable_dict()
    fitted = TrainConfig(runtime=RuntimeConfig(time_limit_minutes=5.0))  # changes the schedule
    assert a.resumable_dict() != fitted.resumable_dict()
    assert a.resumable_dict() != a.replace(data={"lesion_probability": 0.1}).resumable_dict()


def test_the_key_reference_shows_the_defaults_and_a_table_row_per_key() -> None:
    import re

    import yaml

    page = (Path(__file__).parents[2] / "docs" / "concepts" / "training.md").read_text()
    section = page[page.index("## The YAML config") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert TrainConfig.from_dict(yaml.safe_load(block.group(1))) == TrainConfig()
    for name, value in TrainConfig().to_dict().items():
        table = section[section.index(f"### `{name}`") :]
        for key in value:
            assert f"| `{key}` |" in table.split("\n###")[0], f"{name}.{key}"


def test_weights_mode_is_now_class_weights_in_every_layout() -> None:
    """The case draws say ``class_weights``, as a loss term does; the old name still loads."""
    with pytest.warns(
        DeprecationWarning, match=r"'data\.weights_mode' is now 'data\.class_weights'"
    ):
        config = TrainConfig.from_dict({"data": {"weights_mode": "inverse_sqrt"}})
    assert config.data.class_weights == "inverse_sqrt"
    with pytest.warns(DeprecationWarning, match=r"'weights_mode' moved to 'data\.class_weights'"):
        assert TrainConfig.from_dict({"weights_mode": "none"}).data.class_weights == "none"
    with pytest.raises(ConfigError, match="keep 'class_weights' only"):
        TrainConfig.from_dict({"data": {"weights_mode": "none", "class_weights": "none"}})
