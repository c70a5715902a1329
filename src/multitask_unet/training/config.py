"""The training config: four sections that round-trip YAML, as ``train --config`` reads it.

``model`` (:class:`ModelSpec`: which network), ``data`` (:class:`DataConfig`: what the loader
draws), ``optimization`` (:class:`OptimizationConfig`: optimiser, loss, epochs) and
``runtime`` (:class:`RuntimeConfig`: device, precision, validation, the time limit). Every
option has nnU-Net's default where nnU-Net has one; the patch and batch size come from the plan
unless set. ``docs/concepts/training.md`` documents every key. Configs of the old flat layout
(``epochs: 100`` at the top level) still load, with a ``DeprecationWarning`` naming each key's
new place (:mod:`~multitask_unet.training.config_migration`).

Example:
    >>> config = TrainConfig.from_yaml('''
    ... model: {preset: tiny_residual, head: panda}
    ... optimization:
    ...   optimizer: {name: adamw, lr: 0.001}
    ...   epochs: 2
    ...   iterations_per_epoch: 5
    ... runtime: {time_limit_minutes: 10, on_time_limit: stop}
    ... ''')
    >>> config.optimization.optimizer.name, config.optimization.optimizer.weight_decay
    ('adamw', 3e-05)
    >>> config.model.preset, config.runtime.stop_minutes
    ('tiny_residual', 10.0)
    >>> TrainConfig.from_yaml(config.to_yaml()) == config
    True
    >>> config.replace(optimization={"epochs": 4}).optimization.iterations_per_epoch
    5
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from multitask_unet.config import Config
from multitask_unet.training.config_migration import (
    MOVED,
    migrate_train_dict,
    new_place,
    old_value,
    warn_moved,
)
from multitask_unet.training.config_sections import (
    AMP_MODES,
    ON_TIME_LIMIT,
    AmpMode,
    DataConfig,
    OnTimeLimit,
    OptimizationConfig,
    OptimizerConfig,
    RuntimeConfig,
)
from multitask_unet.training.model_spec import ModelSpec

__all__ = [
    "AMP_MODES",
    "ON_TIME_LIMIT",
    "AmpMode",
    "DataConfig",
    "ModelSpec",
    "OnTimeLimit",
    "OptimizationConfig",
    "OptimizerConfig",
    "RuntimeConfig",
    "TrainConfig",
]

T = TypeVar("T", bound="TrainConfig")

# Options that may change when a run is resumed (by section path).
_COSMETIC = (
    "optimization.epochs",
    "data.num_workers",
    "runtime.device",
    "runtime.compile",
    "runtime.progress",
    "runtime.val_every",
)
_SECTIONS = ("data", "optimization", "runtime")


@dataclass(frozen=True)
class TrainConfig(Config):
    """Everything a training run needs besides the data; saved in every checkpoint.

    Attributes:
        model: The network (:class:`ModelSpec`).
        data: Patches, batches, sampling and augmentation (:class:`DataConfig`).
        optimization: Optimiser, loss, epochs and steps (:class:`OptimizationConfig`).
        runtime: Device, precision, seed, validation and the time limit (:class:`RuntimeConfig`).

    The old flat names still read (``config.epochs`` is ``config.optimization.epochs``) and
    still work in :meth:`from_dict` and :meth:`replace`, with a ``DeprecationWarning``.
    """

    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataConfig = field(default_factory=DataConfig)
    optimization: OptimizationConfig = field(default_factory=OptimizationConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        """Build from the sectioned layout, or migrate the old flat one (with a warning)."""
        if isinstance(data, Mapping) and not isinstance(data, cls):
            data, moved = migrate_train_dict(data)
            if moved:
                warn_moved(moved)
        return super().from_dict(data)  # type: ignore[misc]

    @classmethod
    def from_saved(cls: type[T], data: Mapping[str, Any]) -> T:
        """Build from a dict a run saved (a checkpoint's, of either layout), without warnings."""
        return super().from_dict(migrate_train_dict(data)[0])  # type: ignore[misc]

    def replace(self: T, **changes: Any) -> T:
        """A copy with some options changed, validated like the original.

        A section given as a dict changes only the keys it names
        (``replace(runtime={"seed": 1})`` keeps the other runtime options); a section object
        replaces the whole section. Old flat names move to their sections, with a warning.
        """
        changes, moved = migrate_train_dict(changes)
        if moved:
            warn_moved(moved)
        data = self.to_dict()
        for key, value in changes.items():
            if key in _SECTIONS and isinstance(value, Mapping):
                data[key] = {**data[key], **value}
            else:
                data[key] = value.to_dict() if isinstance(value, Config) else value
        return type(self).from_saved(data)

    def merged(self: T, overrides: Mapping[str, Any]) -> T:
        """A copy with nested options changed: a dict changes only the keys it names, at any
        depth (``{"model": {"preset": "tiny_residual"}}`` keeps the head); see
        :meth:`Config.merged <multitask_unet.config.Config.merged>`. Old flat names move to
        their sections, with a warning.

        Example:
            >>> config = TrainConfig.from_dict({"model": {"preset": "tiny_plain", "head": "ovr"}})
            >>> changed = config.merged({"model": {"preset": "tiny_residual"},
            ...                          "optimization": {"optimizer": {"lr": 0.1}}})
            >>> changed.model.head, changed.optimization.optimizer.lr
            ('ovr', 0.1)
        """
        if isinstance(overrides, Mapping):
            overrides, moved = migrate_train_dict(overrides)
            if moved:
                warn_moved(moved)
        return super().merged(overrides)

    def resumable_dict(self) -> dict[str, Any]:
        """The options that must not change when a run is resumed, by section path.

        All but the cosmetic ones (``optimization.epochs``, ``data.num_workers`` and the
        runtime's device, compile, progress and val_every); a time limit counts only when the
        schedule is fitted to it (``on_time_limit: fit``).

        Example:
            >>> TrainConfig().resumable_dict()["data.patch_size"] is None
            True
        """
        out: dict[str, Any] = {"model": self.model.to_dict()}
        for section in _SECTIONS:
            for key, value in getattr(self, section).to_dict().items():
                out[f"{section}.{key}"] = value
        for key in (*_COSMETIC, "runtime.on_time_limit"):
            out.pop(key)
        out["runtime.time_limit_minutes"] = self.runtime.fit_minutes
        return out

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are no attribute: the old flat ones read from sections.
        if name not in MOVED:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}")
        mode = {"time_budget_minutes": "fit", "time_limit_minutes": "stop"}.get(name)
        when = f" (set when runtime.on_time_limit is {mode!r})" if mode else ""
        warn_moved([f"'{name}' moved to '{new_place(name)}'{when}"])
        return old_value(self, name)
