"""What a budget plan sets in the training config: network, schedule, time limit and recipe.

The recipe (:data:`BUDGET_RECIPE`) holds ``TrainConfig`` options by section; it fills every
option that a config leaves at its default, leaf by leaf. Plans written before the sections
hold flat keys (``{"weights_mode": "none"}``): they are read as their sections.

Example:
    >>> config = apply_recipe(TrainConfig(), {"data": {"class_weights": "none"}})
    >>> config.data.class_weights
    'none'
    >>> own = TrainConfig.from_dict({"data": {"class_weights": "inverse_sqrt"}})
    >>> apply_recipe(own, {"weights_mode": "none"}).data.class_weights  # an old flat recipe
    'inverse_sqrt'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from multitask_unet.data.planning import Plan
from multitask_unet.errors import ConfigError
from multitask_unet.training.config import TrainConfig
from multitask_unet.training.config_migration import migrate_train_dict, warn_moved

__all__ = [
    "BUDGET_RECIPE",
    "MAX_LENGTHENING",
    "apply_recipe",
    "budget_train_config",
    "recipe_sections",
]

MAX_LENGTHENING = 1.5
"""How far a budget run may lengthen its planned schedule when steps run faster than measured."""

BUDGET_RECIPE: dict[str, Any] = {
    "optimization": {"optimizer": {"name": "adamw", "lr": 0.003, "weight_decay": 1e-4}},
    "data": {"class_weights": "none", "lesion_probability": 0.15},
}
"""The training recipe a budget plan prescribes besides network and schedule (``TrainConfig``
options by section), as cross-validated on the pancreas study (docs/study/pancreas.md):
AdamW, which converges within the few thousand steps of a short budget where nnU-Net's SGD
needs far more; cases drawn uniformly; some patches of classified cases centred on the lesion."""


def recipe_sections(recipe: Mapping[str, Any], *, warn: bool = False) -> dict[str, dict[str, Any]]:
    """``recipe`` by section (old flat keys moved, with a warning if ``warn``), checked.

    Raises:
        ConfigError: A key that is no ``TrainConfig`` option, or a value it refuses.
    """
    try:
        data, moved = migrate_train_dict(recipe)
        bad = sorted(k for k, v in data.items() if not isinstance(v, Mapping))
        if bad:
            raise ConfigError(f"sections {bad} must map options to values")
        TrainConfig().replace(**data)  # the values must make a valid config
    except ConfigError as exc:
        raise ConfigError(f"the budget recipe {dict(recipe)!r}: {exc}") from None
    if warn and moved:
        warn_moved(moved)
    return {k: dict(v) for k, v in data.items()}


def apply_recipe(config: TrainConfig, recipe: Mapping[str, Any]) -> TrainConfig:
    """``config`` with every recipe option it leaves at ``TrainConfig``'s default set."""
    defaults, current = TrainConfig().to_dict(), config.to_dict()
    changes = {}
    for section, values in recipe_sections(recipe).items():
        keep = {k: v for k, v in values.items() if current[section][k] == defaults[section][k]}
        if keep:
            changes[section] = {**current[section], **keep}
    return config.replace(**changes)


def budget_train_config(plan: Plan, config: TrainConfig | None = None) -> TrainConfig:
    """``config`` with the budget plan's network, schedule, recipe and time limit applied.

    The result trains ``plan.budget.epochs`` x ``plan.budget.iterations_per_epoch`` steps of the
    chosen preset at the plan's patch and batch size and finishes within
    ``plan.budget.train_seconds`` (``runtime.time_limit_minutes`` with ``on_time_limit: fit``,
    replacing the config's time limit), shortening its schedule if the machine turns out
    slower than the trial steps said. ``optimization.epochs`` is set :data:`MAX_LENGTHENING`
    times higher, as a cap: when training runs faster than the trial steps said, the trainer's
    refit lengthens the schedule into the unused time instead of finishing early. The plan's
    recipe (``plan.budget.recipe``, e.g. :data:`BUDGET_RECIPE`) fills every option that
    ``config`` leaves at :class:`TrainConfig`'s default (:func:`apply_recipe`); an option the
    config sets itself is kept. It does not validate during training (``val_every=0``):
    sliding-window validation of whole cases at a small patch can take longer than the training
    itself; evaluate the final checkpoint with ``predict`` and ``evaluate``. An SGD optimiser
    takes the plan's learning rate. Mixed precision (``runtime.amp``) is the trial steps', so
    that training runs as fast as they did.

    Raises:
        ConfigError: The plan has no budget section.
    """
    if plan.budget is None:
        raise ConfigError("this plan was not made with a budget; plan again with --budget")
    b = plan.budget
    config = config or TrainConfig()
    own_optimizer = config.optimization.optimizer != TrainConfig().optimization.optimizer
    config = apply_recipe(config, b.recipe)
    optimizer = config.optimization.optimizer.to_dict()
    if optimizer["name"] == "sgd" and not own_optimizer:
        optimizer["lr"] = b.lr  # the plan's learning rate is SGD's
    device = config.runtime.device
    return config.replace(
        model={**config.model.to_dict(), "preset": b.preset},
        optimization={
            "optimizer": optimizer,
            "epochs": math.ceil(b.epochs * MAX_LENGTHENING),  # a cap; the time limit fits it
            "iterations_per_epoch": b.iterations_per_epoch,
        },
        data={"patch_size": list(plan.patch_size), "batch_size": plan.batch_size},
        runtime={
            "val_every": 0,
            "amp": b.amp,
            "time_limit_minutes": b.train_minutes,
            "on_time_limit": "fit",
            "device": b.device if device == "auto" else device,
        },
    )
