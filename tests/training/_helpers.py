"""Tiny training setups shared by the training tests and their subprocess scripts."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from multitask_unet.data.phantoms import write_phantom_dataset
from multitask_unet.data.planning import Plan
from multitask_unet.data.preprocessing.cache import preprocess_dataset
from multitask_unet.data.readers import read_dataset
from multitask_unet.data.sampling.loader import CacheEntry, cache_entries
from multitask_unet.training import (
    DataConfig,
    OptimizationConfig,
    RuntimeConfig,
    TrainConfig,
    Trainer,
    prepare_plan,
)

#: 16^3 phantoms at 1 mm: the cached volume is exactly one 16^3 patch.
PHANTOMS = {
    "n_train": 6,
    "n_validation": 2,
    "n_test": 0,
    "shape": (16, 16, 16),
    "spacing": (1.0, 1.0, 1.0),
    "class_counts": (1, 1, 1),
    "seed": 3,
}

#: A training config that runs in about a second per epoch on one CPU thread.
TINY = {
    "model": {"preset": "tiny_plain", "head": "last_stage"},
    "data": {"batch_size": 2, "patch_size": [16, 16, 16], "augment": False},
    "optimization": {"epochs": 3, "iterations_per_epoch": 3},
    "runtime": {"val_every": 0, "progress": False, "device": "cpu", "seed": 7},
}
#: The section of each option (``"epochs"`` -> ``"optimization"``), for :func:`config`.
SECTION_OF = {
    f.name: section
    for section, cls in (("data", DataConfig), ("optimization", OptimizationConfig),
                         ("runtime", RuntimeConfig))
    for f in dataclasses.fields(cls)
}  # fmt: skip


@dataclass(frozen=True)
class Prepared:
    """A phantom dataset with its plan and preprocessing cache."""

    data: Path
    cache: Path
    plan: Plan
    class_names: tuple[str, ...]
    label_names: dict[str, int]
    train_ids: tuple[str, ...]
    val_ids: tuple[str, ...]

    def entries(self, ids: tuple[str, ...]) -> list[CacheEntry]:
        by_id = {e.case_id: e for e in cache_entries(self.cache)}
        return [by_id[i] for i in ids]

    def to_json(self) -> str:
        return json.dumps({"data": str(self.data), "cache": str(self.cache)})

    @classmethod
    def from_json(cls, text: str) -> Prepared:
        paths = json.loads(text)
        return prepare(Path(paths["data"]), Path(paths["cache"]), write=False)


def prepare(data: Path, cache: Path, *, write: bool = True) -> Prepared:
    """Write (or read) the phantoms, plan them and fill the cache."""
    if write:
        write_phantom_dataset(data, **PHANTOMS)
    index = read_dataset(data)
    if write:
        plan = prepare_plan(index, config(), workers=1, intensity_samples=10**4)
        preprocess_dataset(index.records, plan, cache, workers=1, progress=False)
    plan = Plan.load(cache / "plan.json")
    return Prepared(
        data=data,
        cache=cache,
        plan=plan,
        class_names=index.class_names,
        label_names=dict(index.label_names),
        train_ids=index.split("train").case_ids,
        val_ids=index.split("validation").case_ids,
    )


def config(**overrides: Any) -> TrainConfig:
    """``TINY`` with some options changed, each named by its key in its section.

    ``config(epochs=2, seed=1)`` sets ``optimization.epochs`` and ``runtime.seed``; a section
    name (``model={...}``) replaces that section.
    """
    data = {section: dict(values) for section, values in TINY.items()}
    for key, value in overrides.items():
        if key in data:
            data[key] = value
        else:
            data[SECTION_OF[key]][key] = value
    return TrainConfig.from_dict(data)


def trainer(prepared: Prepared, run_dir: Path, cfg: TrainConfig, *, val: bool = False) -> Trainer:
    return Trainer(
        cfg,
        run_dir,
        plan=prepared.plan,
        train_cases=prepared.entries(prepared.train_ids),
        val_cases=prepared.entries(prepared.val_ids) if val else (),
        class_names=prepared.class_names,
        label_names=prepared.label_names,
    )


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    payload = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    return payload["state_dict"]


def force_grad_scaler() -> Callable[..., torch.amp.GradScaler]:
    """A ``torch.amp.GradScaler`` stand-in that is always enabled and grows every 2 steps.

    The trainer enables its scaler only for float16 on CUDA; patched in, this makes the scaler's
    state change on the CPU too, so that resume tests can check that it is restored.
    """
    real = torch.amp.GradScaler

    def scaler(device: str = "cuda", *args: Any, **kwargs: Any) -> torch.amp.GradScaler:
        return real(device, init_scale=2.0**8, growth_interval=2, enabled=True)

    return scaler
