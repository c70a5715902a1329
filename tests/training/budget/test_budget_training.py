"""A budget plan in training: the time-budgeted schedule, the recipe, the plan command."""

from __future__ import annotations

import argparse
import json
import math
import types
from pathlib import Path

import numpy as np
import pytest
from _budget_stubs import SEARCH, per_voxel
from _helpers import Prepared, config, trainer

from _references import require
from multitask_unet.data.planning import Plan, create_plan
from multitask_unet.data.planning.fingerprint import compute_fingerprint
from multitask_unet.data.readers import read_dataset
from multitask_unet.errors import ConfigError
from multitask_unet.training import DataConfig, OptimizerConfig, TrainConfig
from multitask_unet.training.budget import (
    BUDGET_RECIPE,
    MAX_LENGTHENING,
    BudgetSearch,
    budget_train_config,
    plan_for_budget,
)
from multitask_unet.training.schedule import poly_lr


def test_budget_train_config_and_trainer_finish_within_the_budget(
    prepared: Prepared, fingerprint, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="--budget"):
        budget_train_config(prepared.plan)
    plan = plan_for_budget(fingerprint, 60, search=SEARCH, head=None, measure=per_voxel(1e-5))
    cfg = budget_train_config(plan, config(device="auto", val_every=5, optimizer={"lr": 0.1}))
    assert cfg.model.preset == plan.budget.preset
    # Room to lengthen the schedule when steps run faster than the trial said.
    opt, run = cfg.optimization, cfg.runtime
    assert opt.epochs == math.ceil(plan.budget.epochs * MAX_LENGTHENING) > plan.budget.epochs
    assert run.time_limit_minutes == pytest.approx(plan.budget.train_seconds / 60)
    assert run.on_time_limit == "fit"
    assert run.device == "cpu" and tuple(cfg.data.patch_size) == plan.patch_size
    assert run.val_every == 0  # validation time is not predictable from trial steps
    assert (opt.optimizer.name, opt.optimizer.lr) == ("sgd", 0.1)  # set by the user: kept
    adamw = budget_train_config(plan, config(optimizer={"name": "adamw", "lr": 3e-4}))
    assert (adamw.optimization.optimizer.name, adamw.optimization.optimizer.lr) == ("adamw", 3e-4)

    # The trainer shortens a 200-epoch schedule to fit 2 s, and its poly decay still ends.
    short = config(epochs=200, iterations_per_epoch=2, time_limit_minutes=2 / 60)
    assert short.runtime.on_time_limit == "fit"  # the default
    result = trainer(prepared, tmp_path / "run", short).fit()
    assert 1 <= result.epochs < 200  # how many epochs fit: tests/training/test_time_limit.py
    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    header, last = lines[0].split(","), lines[-1].split(",")
    lr = float(last[header.index("lr")])
    assert lr == pytest.approx(poly_lr(0.01, result.epochs - 1, result.epochs))


def _cli(argv: list[str]) -> int:
    from multitask_unet.cli import plan as plan_cli

    parser = argparse.ArgumentParser()
    plan_cli.add_parser(parser.add_subparsers(dest="command"))
    return plan_cli.run(parser.parse_args(argv))


def test_plan_command_without_budget_is_the_nnunet_rule_plan(prepared: Prepared, tmp_path) -> None:
    planner = require(
        "nnunetv2.experiment_planning.experiment_planners.default_experiment_planner"
    ).ExperimentPlanner
    out = tmp_path / "plan.json"
    argv = ["plan", str(prepared.data), "-o", str(out), "--size-divisor", "4",
            "--workers", "1", "--no-progress", "--intensity-samples", "5000"]  # fmt: skip
    assert _cli(argv) == 0
    assert "budget" not in json.loads(out.read_text())
    plan = Plan.load(out)
    labels = sorted(set(prepared.label_names.values()))
    index = read_dataset(prepared.data).split("train")
    fp = compute_fingerprint(index.records, intensity_samples=5000, workers=1, progress=False)
    assert plan == create_plan(fp, size_divisor=4, labels=labels)
    fake = types.SimpleNamespace(
        overwrite_target_spacing=None,
        anisotropy_threshold=3,
        dataset_fingerprint={
            "spacings": fp.spacings.tolist(),
            "shapes_after_crop": fp.shapes_after_crop.tolist(),
        },
    )
    theirs = planner.determine_fullres_target_spacing(fake)
    np.testing.assert_allclose(plan.target_spacing, theirs)


def test_plan_command_with_budget(prepared: Prepared, tmp_path, monkeypatch, capsys) -> None:
    import multitask_unet.training.budget.planner as budget_module

    monkeypatch.setattr(budget_module, "measure_step_seconds", lambda m, p, b, **kw: 1e-3)
    out = tmp_path / "run" / "plan.json"
    argv = ["plan", str(prepared.data), "-o", str(out), "--budget", "10m", "--device", "cpu",
            "--min-iterations", "500", "--amp", "off",
            "--workers", "1", "--no-progress", "--intensity-samples", "5000"]  # fmt: skip
    assert _cli(argv) == 0
    plan = Plan.load(out)
    assert plan.budget is not None and plan.budget.seconds == 600.0
    assert plan.budget.min_iterations == 500 and plan.budget.amp == "off"
    printed = capsys.readouterr().out
    assert plan.budget.reason in printed and plan.budget.preset in printed
    with pytest.raises(ConfigError, match="target-spacing"):
        _cli([*argv, "--target-spacing", "1", "1", "1"])


def test_train_applies_a_budget_plan_from_the_run_folder(prepared: Prepared, tmp_path) -> None:
    from multitask_unet.training import TrainConfig, train

    search = SEARCH.replace(presets=["tiny_plain"], min_iterations=10)
    plan = plan_for_budget(
        prepared.plan.fingerprint, 6, search=search, head=None, measure=per_voxel(1e-5)
    )
    run = tmp_path / "run"
    run.mkdir()
    plan.save(run / "plan.json")
    result = train(prepared.data, run, config(model={"preset": "tiny_residual", "head": None}),
                   workers=1, intensity_samples=5000, verbose=False)  # fmt: skip
    saved = TrainConfig.load(run / "config.yaml")
    assert saved.model.preset == "tiny_plain"
    assert saved.optimization.epochs == math.ceil(plan.budget.epochs * MAX_LENGTHENING)  # a cap
    assert saved.runtime.fit_minutes == pytest.approx(plan.budget.train_minutes)
    assert tuple(saved.data.patch_size) == plan.patch_size
    assert 1 <= result.epochs <= saved.optimization.epochs


def test_the_budget_plan_carries_the_recipe_and_fills_what_the_config_leaves_default(
    fingerprint,
) -> None:
    plan = plan_for_budget(fingerprint, 60, search=SEARCH, head=None, measure=per_voxel(1e-5))
    assert plan.budget.recipe == BUDGET_RECIPE
    cfg = budget_train_config(plan, TrainConfig())
    recipe_optimizer = BUDGET_RECIPE["optimization"]["optimizer"]
    optimizer = cfg.optimization.optimizer
    assert optimizer.to_dict() == {**OptimizerConfig().to_dict(), **recipe_optimizer}
    assert cfg.data.class_weights == BUDGET_RECIPE["data"]["class_weights"]
    assert cfg.data.lesion_probability == BUDGET_RECIPE["data"]["lesion_probability"]
    own = budget_train_config(
        plan, TrainConfig(data=DataConfig(class_weights="inverse_sqrt", lesion_probability=0.5))
    )
    assert (own.data.class_weights, own.data.lesion_probability) == ("inverse_sqrt", 0.5)
    assert own.optimization.optimizer.name == "adamw"  # left at the default: the recipe's
    # A recipe that keeps SGD takes the plan's SGD learning rate.
    sgd = SEARCH.replace(recipe={"optimization": {"optimizer": {"name": "sgd"}}}, lr=0.02)
    plan = plan_for_budget(fingerprint, 60, search=sgd, head=None, measure=per_voxel(1e-5))
    assert budget_train_config(plan).optimization.optimizer.lr == 0.02
    # Plans written before the recipe existed train as they did.
    old = plan.replace(budget={**plan.budget.to_dict(), "recipe": {}})
    assert budget_train_config(old).optimization.optimizer == OptimizerConfig(lr=0.02)


def test_plans_with_a_flat_recipe_still_apply_it(fingerprint, recwarn) -> None:
    plan = plan_for_budget(fingerprint, 60, search=SEARCH, head=None, measure=per_voxel(1e-5))
    flat = {"optimizer": {"name": "adamw", "lr": 0.002}, "weights_mode": "none"}
    old = plan.replace(budget={**plan.budget.to_dict(), "recipe": flat})  # written before sections
    cfg = budget_train_config(old, TrainConfig())
    assert (cfg.optimization.optimizer.lr, cfg.data.class_weights) == (0.002, "none")
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]
    with pytest.warns(DeprecationWarning, match=r"'weights_mode' moved to 'data\.class_weights'"):
        search = BudgetSearch(recipe=flat)
    assert search.recipe == {"optimization": {"optimizer": flat["optimizer"]},
                             "data": {"class_weights": "none"}}  # fmt: skip


def test_a_recipe_must_name_train_config_keys() -> None:
    with pytest.raises(ConfigError, match=r"no option 'learning_rate'"):
        BudgetSearch(recipe={"learning_rate": 0.1})
    with pytest.raises(ConfigError, match="class_weights"):
        BudgetSearch(recipe={"data": {"class_weights": "sometimes"}})
    with pytest.raises(ConfigError, match=r"belongs in 'optimization\.epochs'"):
        BudgetSearch(recipe={"data": {"epochs": 3}})


def test_auto_precision_of_the_search_is_bf16_only_on_cpus_with_native_bf16(monkeypatch) -> None:
    import multitask_unet.training.budget.search as search_module

    for native, expected in ((True, "bf16"), (False, "auto")):
        monkeypatch.setattr(search_module, "cpu_has_native_bf16", lambda n=native: n)
        assert BudgetSearch().resolved_amp("cpu") == expected
        assert BudgetSearch(amp="off").resolved_amp("cpu") == "off"
    assert BudgetSearch().resolved_amp("cuda") == "auto"


def test_train_with_a_budget_plans_within_it_and_trains_the_recipe(
    prepared: Prepared, tmp_path, monkeypatch
) -> None:
    import multitask_unet.training.budget.planner as budget_module
    from multitask_unet.training import train

    monkeypatch.setattr(budget_module, "measure_step_seconds", lambda m, p, b, **kw: 1e-4)
    search = SEARCH.replace(presets=["tiny_plain"], min_iterations=10, amp="off")
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match="duration"):
        train(prepared.data, run, budget="thirty minutes")
    assert not run.exists()  # nothing done before the error
    train(prepared.data, run, config(model={"head": None}), budget="6s", search=search,
          workers=1, intensity_samples=5000, verbose=False)  # fmt: skip
    plan = Plan.load(run / "plan.json")
    assert plan.budget is not None and plan.budget.seconds < 6  # validation came first
    saved = TrainConfig.load(run / "config.yaml")
    assert saved.optimization.optimizer.name == "adamw" and saved.data.class_weights == "none"
    assert saved.model.preset == "tiny_plain"
    # A run folder planned without a budget is not silently re-planned.
    other = tmp_path / "other"
    other.mkdir()
    prepared.plan.save(other / "plan.json")
    with pytest.raises(ConfigError, match="without a budget"):
        train(prepared.data, other, budget="6s", workers=1, verbose=False)
