"""The training input pipeline: cases -> balanced case draws -> patches -> augmentation -> Batch.

:class:`TrainLoader` is a ``DataLoader`` over a map-style :class:`PatchDataset`: every draw of
the :class:`~multitask_unet.data.sampling.case_sampling.BalancedCaseSampler` becomes one patch, cropped from
the (memory-mapped) case by the :class:`~multitask_unet.data.sampling.patches.ForegroundPatchSampler`,
augmented in a worker and collated into a :class:`~multitask_unet.data.sampling.batch.Batch`. Each draw
carries its own seed, derived from ``(seed, epoch, rank, position)``, so an epoch's batches are
identical whatever the number of workers. :func:`queue_loader` offers the same sampler and
augmentation on TorchIO's ``Queue`` instead; its workers only load volumes while patches are cut
and augmented in the training process, so prefer :class:`TrainLoader` (see
``benchmarks/bench_data.py``). The cases (subjects, or the
:class:`~multitask_unet.data.sampling.cases.CacheEntry` s of a cache folder) are read by
:mod:`~multitask_unet.data.sampling.cases`.

Example:
    >>> import torch, torchio as tio
    >>> seg = torch.zeros(1, 12, 12, 12, dtype=torch.uint8); seg[0, 4:8, 4:8, 4:8] = 1
    >>> subjects = [tio.Subject(image=tio.ScalarImage(tensor=torch.rand(1, 12, 12, 12)),
    ...                         seg=tio.LabelMap(tensor=seg), label=i % 2, case_id=f"c{i}")
    ...             for i in range(4)]
    >>> loader = TrainLoader(subjects, LoaderConfig(patch_size=(8, 8, 8), batch_size=2,
    ...                                             iterations_per_epoch=3))
    >>> batches = list(loader)
    >>> len(batches), batches[0].image.shape, batches[0].seg.dtype
    (3, torch.Size([2, 1, 8, 8, 8]), torch.uint8)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torchio as tio
from torch.utils.data import DataLoader, Dataset, Sampler

from multitask_unet.data.sampling.augmentation import (
    AugmentationConfig,
    build_patch_transforms,
    build_spatial_transform,
    window_size,
)
from multitask_unet.data.sampling.batch import Batch
from multitask_unet.data.sampling.case_sampling import BalancedCaseSampler, distributed_rank
from multitask_unet.data.sampling.cases import CacheEntry, cache_entries, case_label, open_cases
from multitask_unet.data.sampling.config import DataConfig
from multitask_unet.data.sampling.device_augmentation import (
    WindowSampler,
    device_augmentation_for,
)
from multitask_unet.data.sampling.patches import ForegroundPatchSampler, patch_to_sample
from multitask_unet.errors import ConfigError

__all__ = [
    "CacheEntry",
    "LoaderConfig",
    "PatchDataset",
    "TrainLoader",
    "cache_entries",
    "queue_loader",
]


@dataclass(frozen=True)
class LoaderConfig(DataConfig):
    """Options of the training input pipeline: the data section with everything resolved.

    The sampling and augmentation options are :class:`~multitask_unet.data.sampling.config.DataConfig`'s
    (``TrainConfig.data``); here the patch and batch size are the ones used, and the schedule,
    seed and memory pinning are added.

    Attributes:
        patch_size: Patch ``(D, H, W)`` fed to the network.
        batch_size: Patches per batch (per rank).
        iterations_per_epoch: Batches per epoch (nnU-Net: 250).
        seed: Base seed of case draws, patch positions and augmentation.
        pin_memory: Pin batches for faster host-to-GPU copies.
    """

    patch_size: tuple[int, int, int] = (64, 128, 128)
    batch_size: int = 2
    iterations_per_epoch: int = 250
    seed: int = 0
    pin_memory: bool = False

    _where: ClassVar[str] = "LoaderConfig"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.iterations_per_epoch < 1:
            raise ConfigError(
                f"LoaderConfig.iterations_per_epoch must be at least 1, got "
                f"{self.iterations_per_epoch}"
            )

    @classmethod
    def from_section(
        cls,
        data: DataConfig,
        *,
        patch_size: Sequence[int],
        batch_size: int,
        iterations_per_epoch: int,
        seed: int,
        pin_memory: bool = False,
    ) -> LoaderConfig:
        """The loader options of a training config's data section, with the resolved values."""
        options = {f.name: getattr(data, f.name) for f in dataclasses.fields(DataConfig)}
        return cls(
            **{**options, "patch_size": tuple(patch_size), "batch_size": batch_size},
            iterations_per_epoch=iterations_per_epoch,
            seed=seed,
            pin_memory=pin_memory,
        )

    def augmentation_config(self) -> AugmentationConfig:  # type: ignore[override]
        """The augmentation actually used (off, configured, or nnU-Net's for the patch size)."""
        return super().augmentation_config(self.patch_size)

    def patch_sampler(self) -> ForegroundPatchSampler:
        """The patch sampler with the augmentation these options describe (device: crop only)."""
        aug = self.augmentation_config()
        common: dict[str, Any] = {
            "foreground_probability": self.foreground_probability,
            "window_size": window_size(self.patch_size, aug),
            "lesion_label": self.lesion_label if self.lesion_probability > 0 else None,
            "lesion_probability": self.lesion_probability,
        }
        if aug.backend == "device":
            return WindowSampler(self.patch_size, **common)
        return ForegroundPatchSampler(
            self.patch_size,
            spatial_transform=build_spatial_transform(aug, patch_size=self.patch_size),
            transform=build_patch_transforms(aug),
            **common,
        )


class PatchDataset(Dataset):
    """Map-style dataset indexed by ``(case_index, seed)``; returns one augmented patch sample.

    Args:
        cases: In-memory subjects or :class:`CacheEntry` s (opened lazily in each worker).
        sampler: Crops, oversamples foreground and augments.
    """

    def __init__(
        self, cases: Sequence[tio.Subject | CacheEntry], sampler: ForegroundPatchSampler
    ) -> None:
        self.cases = list(cases)
        self.sampler = sampler
        self._open: dict[int, tuple[tio.Subject, dict[int, np.ndarray]]] = {}

    def __len__(self) -> int:
        return len(self.cases)

    def case(
        self, index: int, *, subject: tio.Subject | None = None
    ) -> tuple[tio.Subject, dict[int, np.ndarray]]:
        """The subject of case ``index`` and its class locations (cached per process).

        ``subject`` passes in the case already opened (e.g. while listing a cache folder).
        """
        if index not in self._open:
            case = self.cases[index]
            if subject is None:
                subject = case.open() if isinstance(case, CacheEntry) else case
            self._open[index] = (subject, self.sampler.class_locations(subject))
        return self._open[index]

    def __getitem__(self, item: tuple[int, int]) -> dict[str, Any]:
        index, seed = item
        subject, locations = self.case(index)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)  # CPU only: no CUDA bookkeeping
            patch = self.sampler.sample(
                subject, rng=np.random.default_rng(seed), class_locations=locations
            )
        return patch_to_sample(patch)

    def __getstate__(self) -> dict[str, Any]:  # spawned workers reopen memory maps themselves
        state = dict(self.__dict__)
        state["_open"] = {
            i: v for i, v in self._open.items() if not isinstance(self.cases[i], CacheEntry)
        }
        return state


class _SeededDraws(Sampler[tuple[int, int]]):
    """Pairs every case draw with a seed from ``(seed, epoch, rank, position)``."""

    def __init__(self, cases: BalancedCaseSampler) -> None:
        self.cases = cases

    def __iter__(self) -> Iterator[tuple[int, int]]:
        c = self.cases
        for pos, index in enumerate(c):
            ss = np.random.SeedSequence([c.seed, c.epoch, c.rank, pos])
            yield index, int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))

    def __len__(self) -> int:
        return len(self.cases)


class TrainLoader:
    """Iterable over one epoch of training :class:`Batch` es.

    Args:
        source: ``tio.Subject`` s (``image``, ``seg``, ``label``, ``case_id``; optional
            ``class_locations``), :class:`CacheEntry` s, or a preprocessing cache folder.
        config: Pipeline options.
        rank: Rank of this process; defaults to ``torch.distributed``'s.
        world_size: Number of ranks; defaults to ``torch.distributed``'s.

    Call :meth:`set_epoch` before each epoch to draw new cases and patches. With the
    augmentation's ``backend: device`` the batches hold unaugmented windows: apply
    :attr:`augmentation` (a :class:`~.device_augmentation.DeviceAugmentation`; None
    otherwise) to each on the device.

    Attributes:
        augmentation: The augmentation to apply on the device, or None when the loader's
            batches are augmented already (or not at all).
    """

    def __init__(
        self,
        source: Sequence[tio.Subject | CacheEntry] | str | os.PathLike[str],
        config: LoaderConfig | None = None,
        *,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        self.config = cfg = config or LoaderConfig()
        self.cases, opened = open_cases(source)
        rank, world_size = distributed_rank(rank, world_size)
        self.case_sampler = BalancedCaseSampler(
            [case_label(c) for c in self.cases],
            class_weights=cfg.class_weights,
            max_oversampling=cfg.max_oversampling,
            num_samples=cfg.batch_size * cfg.iterations_per_epoch * world_size,
            seed=cfg.seed,
            rank=rank,
            world_size=world_size,
        )
        self.dataset = PatchDataset(self.cases, cfg.patch_sampler())
        self.augmentation = device_augmentation_for(cfg, rank=rank)
        for i, subject in opened.items():
            self.dataset.case(i, subject=subject)
        if cfg.num_workers > 0:  # open cases and find class locations once, before workers fork
            for i in range(len(self.cases)):
                self.dataset.case(i)
        self._loader = DataLoader(
            self.dataset,
            batch_size=cfg.batch_size,
            sampler=_SeededDraws(self.case_sampler),
            num_workers=cfg.num_workers,
            collate_fn=Batch.collate,
            pin_memory=cfg.pin_memory,
            drop_last=True,
            persistent_workers=cfg.num_workers > 0,
            prefetch_factor=4 if cfg.num_workers > 0 else None,
        )

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (new case draws, patch positions and augmentations)."""
        self.case_sampler.set_epoch(epoch)
        if self.augmentation is not None:
            self.augmentation.set_epoch(epoch)

    def __iter__(self) -> Iterator[Batch]:
        return iter(self._loader)

    def __len__(self) -> int:
        return len(self._loader)


def _collate_patches(patches: Sequence[tio.Subject]) -> Batch:
    return Batch.collate([patch_to_sample(p) for p in patches])


def queue_loader(
    subjects: Sequence[tio.Subject],
    config: LoaderConfig | None = None,
    *,
    samples_per_volume: int = 8,
    max_length: int = 64,
) -> DataLoader:
    """The same sampling and augmentation on TorchIO's ``Queue``; yields :class:`Batch` es.

    The queue's workers load (and copy) whole subjects; ``samples_per_volume`` patches are then
    cut and augmented from each *in the calling process*, ``max_length`` patches at a time, so
    this work does not overlap with training and does not scale with ``num_workers``. Cases are
    drawn by the balanced sampler: call the loader's ``set_epoch(epoch)`` before each epoch to
    draw new ones. Kept for TorchIO-based workflows; :class:`TrainLoader` does all per-patch work
    in its workers. Subjects of a cache folder: ``[e.open() for e in cache_entries(folder)]``.
    """
    cfg = config or LoaderConfig()
    if cfg.augmentation_config().backend != "workers":
        raise ConfigError("queue_loader augments in the host process; use the augmentation "
                          "backend 'workers', or TrainLoader for 'device'")  # fmt: skip
    subjects = list(subjects)
    num_subjects = max(1, cfg.batch_size * cfg.iterations_per_epoch // samples_per_volume)
    case_sampler = BalancedCaseSampler(
        [case_label(s) for s in subjects],
        class_weights=cfg.class_weights,
        max_oversampling=cfg.max_oversampling,
        num_samples=num_subjects,
        seed=cfg.seed,
    )
    queue = tio.Queue(
        tio.SubjectsDataset(subjects),
        max_length=max_length,
        samples_per_volume=samples_per_volume,
        sampler=cfg.patch_sampler(),
        subject_sampler=case_sampler,
        num_workers=cfg.num_workers,
        shuffle_subjects=False,
    )
    loader = DataLoader(
        queue,
        batch_size=cfg.batch_size,
        num_workers=0,
        collate_fn=_collate_patches,
        pin_memory=cfg.pin_memory,
    )
    loader.set_epoch = case_sampler.set_epoch  # type: ignore[attr-defined]  # as TrainLoader's
    return loader
