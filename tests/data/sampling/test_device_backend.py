"""``AugmentationConfig.backend: device`` end to end: the loader crops windows, the device
augments.

On phantoms, the patches of both backends agree in distribution: per-patch intensity mean,
std and roughness and the share of every label, compared as paired differences (both loaders
draw the same cases and windows from the same seed, the augmentations independently) within
5 standard errors of their mean.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchio as tio

from multitask_unet.data.phantoms import make_phantom
from multitask_unet.data.sampling.augmentation import AugmentationConfig, window_size
from multitask_unet.data.sampling.batch import Batch
from multitask_unet.data.sampling.config import DataConfig
from multitask_unet.data.sampling.device_augmentation import DeviceAugmentation, WindowSampler
from multitask_unet.data.sampling.loader import LoaderConfig, TrainLoader, queue_loader
from multitask_unet.errors import ConfigError

PATCH = (16, 16, 16)
STATS = ("mean", "std", "roughness", "label 1", "label 2")


@pytest.fixture(scope="module")
def phantoms() -> list[tio.Subject]:
    """Six z-scored phantoms (as preprocessing normalises CT), two of each subtype."""
    subjects = []
    for i in range(6):
        image, mask = make_phantom(i % 3, shape=(36, 32, 28), spacing=(1.5, 1.5, 1.5), seed=i)
        x = image.astype(np.float32)
        x = (x - x.mean()) / x.std()
        subjects.append(
            tio.Subject(
                image=tio.ScalarImage(tensor=torch.from_numpy(x)[None]),
                seg=tio.LabelMap(tensor=torch.from_numpy(mask)[None]),
                label=i % 3,
                case_id=f"case{i}",
            )
        )
    return subjects


def _config(
    backend: str, augmentation: AugmentationConfig | None = None, **changes: object
) -> LoaderConfig:
    options = {"patch_size": PATCH, "batch_size": 8, "iterations_per_epoch": 100, "seed": 11}
    aug = dataclasses.replace(augmentation or AugmentationConfig(), backend=backend)
    return LoaderConfig(**{**options, **changes}, augmentation=aug)  # type: ignore[arg-type]


def _patch_stats(batches: list[Batch]) -> np.ndarray:
    """``(patches, len(STATS))``: the statistics of every patch."""
    rows = []
    for batch in batches:
        for image, seg in zip(batch.image, batch.seg):
            x = image.double()
            rough = sum(x.diff(dim=d).abs().mean() for d in (1, 2, 3)) / 3
            rows.append([x.mean(), x.std(), rough, (seg == 1).double().mean(),
                         (seg == 2).double().mean()])  # fmt: skip
    return np.asarray(rows, dtype=np.float64)


def _epoch(loader: TrainLoader, epoch: int = 0) -> list[Batch]:
    loader.set_epoch(epoch)
    if loader.augmentation is None:
        return list(loader)
    return [loader.augmentation(batch) for batch in loader]


@pytest.fixture(scope="module")
def workers_stats(phantoms: list[tio.Subject]) -> np.ndarray:
    return _patch_stats(_epoch(TrainLoader(phantoms, _config("workers"))))


def _disagreements(a: np.ndarray, b: np.ndarray) -> list[str]:
    """The statistics whose paired mean difference exceeds 5 standard errors."""
    diff = a - b
    se = diff.std(0, ddof=1) / math.sqrt(len(diff))
    return [
        f"{name}: {a[:, i].mean():.4f} vs {b[:, i].mean():.4f} (tolerance {5 * se[i]:.4f})"
        for i, name in enumerate(STATS)
        if abs(diff[:, i].mean()) > 5 * se[i]
    ]


def test_the_workers_only_crop_windows(phantoms: list[tio.Subject]) -> None:
    cfg = _config("device")
    loader = TrainLoader(phantoms, cfg)
    assert isinstance(loader.dataset.sampler, WindowSampler)
    assert loader.augmentation is not None
    batch = next(iter(loader))
    win = window_size(PATCH, cfg.augmentation_config())
    assert batch.image.shape[2:] == win and win != PATCH
    assert loader.augmentation(batch).image.shape[2:] == PATCH
    assert TrainLoader(phantoms, _config("workers")).augmentation is None
    off = TrainLoader(phantoms, _config("device", AugmentationConfig.off()))
    assert off.augmentation is not None
    assert next(iter(off)).image.shape[2:] == PATCH  # nothing to rotate: the patch itself


def test_device_batches_are_seeded_by_seed_and_epoch(phantoms: list[tio.Subject]) -> None:
    cfg = _config("device", iterations_per_epoch=2)
    first = [b.image for b in _epoch(TrainLoader(phantoms, cfg), 1)]
    again = [b.image for b in _epoch(TrainLoader(phantoms, cfg), 1)]
    other = [b.image for b in _epoch(TrainLoader(phantoms, cfg), 2)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])


def test_both_backends_place_the_same_windows(phantoms: list[tio.Subject]) -> None:
    """Same seed, same window: the workers' patch lies at the centre of the device's window."""
    workers, device = (_config(b).patch_sampler() for b in ("workers", "device"))
    assert isinstance(device, WindowSampler) and not isinstance(workers, WindowSampler)
    offset = np.asarray(device.window_size) // 2 - np.asarray(PATCH) // 2
    for seed in range(40):
        subject = phantoms[seed % len(phantoms)]
        patch = workers.sample(subject, rng=np.random.default_rng(seed))
        window = device.sample(subject, rng=np.random.default_rng(seed))
        assert window["image"].shape[1:] == device.window_size
        lower = window[tio.LOCATION][:3].numpy()
        assert np.array_equal(patch[tio.LOCATION][:3].numpy(), lower + offset)


def test_augmented_patches_agree_in_distribution(
    phantoms: list[tio.Subject], workers_stats: np.ndarray
) -> None:
    loader = TrainLoader(phantoms, _config("device"))
    batches = _epoch(loader)
    for batch in batches:
        assert set(batch.seg.unique().tolist()) <= {0, 1, 2}
    device_stats = _patch_stats(batches)
    assert len(device_stats) == len(workers_stats) == 800
    assert _disagreements(workers_stats, device_stats) == []


@pytest.mark.parametrize(
    ("change", "caught"),
    [({"p_noise": 0.0}, "roughness"), ({"p_rotation": 0.0, "p_scaling": 0.0}, "mean")],
)
def test_the_distribution_check_can_fail(
    phantoms: list[tio.Subject], workers_stats: np.ndarray, change: dict, caught: str
) -> None:
    """A recipe without noise, or without rotation and scaling, is caught."""
    wrong = AugmentationConfig(**change)
    loader = TrainLoader(phantoms, _config("device", augmentation=wrong))
    assert any(
        d.startswith(caught) for d in _disagreements(workers_stats, _patch_stats(_epoch(loader)))
    )


def test_the_backend_is_a_checked_option(phantoms: list[tio.Subject]) -> None:
    assert DataConfig().augmentation_config(PATCH).backend == "workers"
    with pytest.raises(ConfigError, match="backend"):
        DataConfig.from_dict({"augmentation": {"backend": "gpu"}})
    thin = (8, 64, 64)  # nnU-Net's dummy-2D recipe: in-plane rotation
    device = DataConfig.from_dict({"augmentation": {"backend": "device"}})
    expected = dataclasses.replace(AugmentationConfig.nnunet(thin), backend="device")
    assert device.augmentation_config(thin) == expected  # the backend alone keeps the recipe
    assert DataConfig(augmentation=AugmentationConfig()).augmentation_config(thin) == (
        AugmentationConfig()  # as before: written-out strengths are used as written
    )
    with pytest.raises(ConfigError, match="TrainLoader"):
        queue_loader(phantoms, _config("device"))


def test_training_with_the_device_backend_resumes_exactly(
    phantom_dataset: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from multitask_unet.training import TrainConfig, train

    calls = []
    augment = DeviceAugmentation.__call__
    monkeypatch.setattr(DeviceAugmentation, "__call__",
                        lambda self, batch: calls.append(1) or augment(self, batch))  # fmt: skip

    def config(epochs: int) -> TrainConfig:
        return TrainConfig.from_dict({
            "model": {"preset": "tiny_plain", "head": "last_stage"},
            "data": {"batch_size": 2, "patch_size": [8, 16, 16], "augmentation": {"backend": "device"}},
            "optimization": {"epochs": epochs, "iterations_per_epoch": 2},
            "runtime": {"val_every": 0, "progress": False, "device": "cpu", "seed": 5},
        })  # fmt: skip

    torch.set_num_threads(1)
    cache = tmp_path / "cache"
    common = {"cache_dir": cache, "workers": 1, "intensity_samples": 10_000, "verbose": False}
    train(phantom_dataset, tmp_path / "whole", config(2), **common)  # type: ignore[arg-type]
    assert len(calls) == 4  # every step's batch was augmented on the device
    train(phantom_dataset, tmp_path / "split", config(1), **common)  # type: ignore[arg-type]
    train(phantom_dataset, tmp_path / "split", config(2), resume=True, **common)  # type: ignore[arg-type]
    whole, split = (
        torch.load(tmp_path / run / "checkpoints" / "last.pt", weights_only=True)["state_dict"]
        for run in ("whole", "split")
    )
    assert all(torch.equal(whole[k], split[k]) for k in whole)
