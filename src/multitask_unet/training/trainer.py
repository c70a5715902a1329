"""The :class:`Trainer`: nnU-Net's training recipe for a multi-task U-Net, readable top to bottom.

A run folder holds everything a run writes::

    RUN/config.yaml               the TrainConfig (YAML, as `train --config` reads it)
    RUN/checkpoints/last.pt       after every epoch: weights + state to resume (atomic)
    RUN/checkpoints/best.pt       the epoch with the best validation score
    RUN/metrics.csv, curves.png   one row per epoch; the curves (tensorboard/ when installed)

Example:
    >>> import tempfile
    >>> from multitask_unet.data.phantoms import write_phantom_dataset
    >>> from multitask_unet.training import TrainConfig, train
    >>> root = write_phantom_dataset(tempfile.mkdtemp(), n_train=3, n_validation=1, n_test=0,
    ...                              shape=(16, 16, 16)).root
    >>> config = TrainConfig.from_dict({"model": {"preset": "tiny_plain"},
    ...     "optimization": {"epochs": 1, "iterations_per_epoch": 2},
    ...     "data": {"batch_size": 2, "patch_size": [16, 16, 16]}, "runtime": {"progress": False}})
    >>> result = train(root, tempfile.mkdtemp(), config, workers=1, intensity_samples=10_000,
    ...                verbose=False)  # doctest: +ELLIPSIS
    epoch 1/1  lr=0.01  loss=...
    >>> result.epochs, "loss" in result.metrics
    (1, True)
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from multitask_unet.checkpoints import save_checkpoint
from multitask_unet.data.planning import Plan
from multitask_unet.data.readers import generic_label_names
from multitask_unet.data.sampling.loader import CacheEntry, LoaderConfig, TrainLoader
from multitask_unet.errors import ConfigError
from multitask_unet.losses import check_labels
from multitask_unet.models import MultiTaskUNet
from multitask_unet.training.builders import build_loss, build_model_config
from multitask_unet.training.compiling import compile_mode, compiled
from multitask_unet.training.config import TrainConfig
from multitask_unet.training.distributed import DistInfo, reduce_mean, setup_distributed
from multitask_unet.training.fit_parts import (
    FitClock,
    FitParts,
    agree,
    barrier,
    check_finite,
    check_patch,
    check_run_folder,
    restore_training_state,
    seed_everything,
    targets,
)
from multitask_unet.training.init_weights import initialise_from
from multitask_unet.training.metrics import MetricsLog
from multitask_unet.training.online_evaluation import validate
from multitask_unet.training.precision import autocast_dtype
from multitask_unet.training.progress import accumulate, means, postfix, print_row, progress_bar
from multitask_unet.training.schedule import PolyLR, build_optimizer
from multitask_unet.training.state import training_state
from multitask_unet.training.step import training_step
from multitask_unet.training.time_limit import epochs_within_time_limit

__all__ = ["TrainResult", "Trainer"]

LAST, BEST = "last.pt", "best.pt"


@dataclass(frozen=True)
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes:
        run_dir: The run folder.
        epochs: Epochs completed (including those before a resume).
        metrics: The last epoch's row of ``metrics.csv``.
        best_score: Best ``val/score`` (None without validation).
        seconds: Wall-clock time of this call.
    """

    run_dir: Path
    epochs: int
    metrics: dict[str, float] = field(default_factory=dict)
    best_score: float | None = None
    seconds: float = 0.0


class Trainer:
    """Trains a :class:`MultiTaskUNet` on a preprocessing cache.

    Args:
        config: The :class:`TrainConfig`.
        run_dir: Where checkpoints, metrics and curves go.
        plan: The preprocessing plan of the cache (stored in checkpoints for the predictor).
        train_cases: Cached training cases (:func:`multitask_unet.data.sampling.loader.cache_entries`).
        val_cases: Cached validation cases (with masks and labels), or none.
        class_names: Case-level class names, index = class.
        label_names: Segmentation labels by name.

    Under ``torchrun`` every process builds a Trainer; rank 0 alone writes files.
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | os.PathLike[str],
        *,
        plan: Plan,
        train_cases: Sequence[CacheEntry],
        val_cases: Sequence[CacheEntry] = (),
        class_names: Sequence[str] = (),
        label_names: Mapping[str, int] | None = None,
    ) -> None:
        if not train_cases:
            raise ConfigError("the Trainer got no training cases; check the dataset's train split")
        self.config = config
        self.run_dir = Path(run_dir)
        self.train_cases = list(train_cases)
        self.val_cases = list(val_cases)
        self.class_names = tuple(class_names)
        labels = plan.preprocessing.labels
        self.label_names = dict(label_names or generic_label_names(labels))
        self.patch_size = tuple(config.data.patch_size or plan.patch_size)
        self.batch_size = config.data.batch_size or plan.batch_size
        # The checkpoint's plan carries the trained patch: the predictor's default window.
        self.plan = dataclasses.replace(plan, patch_size=self.patch_size)
        self.model_config = build_model_config(
            config.model,
            in_channels=plan.fingerprint.num_channels,
            seg_classes=max(labels) + 1,
            case_classes=len(self.class_names),
        )

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train for ``optimization.epochs`` epochs (continuing from ``last.pt`` with ``resume``)."""
        started = time.perf_counter()
        run, opt = self.config.runtime, self.config.optimization
        dist = setup_distributed(run.device)
        if self.batch_size % dist.world_size:
            raise ConfigError(
                f"batch_size {self.batch_size} does not split over {dist.world_size} processes; "
                f"use a multiple of {dist.world_size}"
            )
        if dist.is_main:
            check_run_folder(self.run_dir, self.checkpoint_dir / LAST, resume=resume)
        parts = self._build(dist)
        start_epoch, best = 0, None
        if resume:
            start_epoch, best = self._restore(parts, dist)
        elif self.config.model.init_weights is not None:
            report = initialise_from(parts.model, self.config.model.init_weights)
            if dist.is_main:
                print(report.describe(), flush=True)
        if dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.config.save(self.run_dir / "config.yaml")
        # Data: balanced case draws, sharded over ranks; batches depend on (seed, epoch, rank).
        loader = TrainLoader(self.train_cases, self._loader_config(dist), rank=dist.rank,
                             world_size=dist.world_size)  # fmt: skip
        log = MetricsLog(self.run_dir) if dist.is_main else None
        if log is not None:
            log.resume(start_epoch)
        clock = FitClock(started, start_epoch, opt.epochs)
        row: dict[str, float] = {}
        for epoch in range(start_epoch, opt.epochs):
            total = self._refit(clock, epoch, parts, dist)
            row = self._train_epoch(parts, loader, epoch, clock, dist)
            last_epoch = epoch == total - 1
            if (
                self.val_cases
                and run.val_every
                and ((epoch + 1) % run.val_every == 0 or last_epoch)
            ):
                if dist.is_main:
                    row.update(self._validate(parts))
                barrier(dist)
            if dist.is_main:  # last.pt every epoch, best.pt when the score improves
                assert log is not None
                best = self._checkpoint(parts, row, epoch, best, dist)
                log.append(row)
                log.plot()
                if not run.progress:
                    print_row(row, total)
            barrier(dist)
            if last_epoch or self._time_is_up(started, epoch, dist):
                break
        if log is not None:
            log.close()
        return TrainResult(
            run_dir=self.run_dir,
            epochs=int(row.get("epoch", start_epoch - 1)) + 1,
            metrics=row,
            best_score=None if best is None else best[0],
            seconds=time.perf_counter() - started,
        )

    # -- pieces of fit ----------------------------------------------------------------------------
    def _build(self, dist: DistInfo) -> FitParts:
        """Model, loss, optimiser, schedule and AMP scaler on the device; the training forward."""
        cfg, run, opt = self.config, self.config.runtime, self.config.optimization
        device = dist.device
        seed_everything(run.seed)
        if run.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        amp_dtype = autocast_dtype(run.amp, device)
        if device.type == "cuda" and not run.deterministic:
            torch.backends.cudnn.benchmark = True  # fixed patch shapes: let cuDNN pick (nnU-Net)
        model = MultiTaskUNet(self.model_config).to(device)
        check_patch(model, self.patch_size)
        labels = [e.label for e in self.train_cases if e.label is not None]
        counts = np.bincount(labels, minlength=len(self.class_names)).tolist() if labels else []
        loss_fn = build_loss(cfg, model, class_counts=counts).to(device)
        optimizer = build_optimizer([*model.parameters(), *loss_fn.parameters()], opt.optimizer,
                                    fused=device.type == "cuda")  # fmt: skip
        scheduler = PolyLR(optimizer, opt.epochs, exponent=opt.optimizer.poly_exponent)
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        ignore_label = next(
            (
                m.ignore_label
                for m in loss_fn.modules()
                if getattr(m, "ignore_label", None) is not None
            ),
            None,
        )
        net = compiled(model, run.compile, device)  # the training forward; `model` is saved
        if dist.distributed:
            ids = [device.index] if device.type == "cuda" else None
            unused = bool(set(model.heads) - set(loss_fn.losses))  # a head without a loss term
            net = nn.parallel.DistributedDataParallel(
                net, device_ids=ids, find_unused_parameters=unused
            )
        return FitParts(
            model=model,
            net=net,
            loss_fn=loss_fn,
            optimizer=optimizer,
            scheduler=scheduler,
            scaler=scaler,
            amp_dtype=amp_dtype,
            graphed=compile_mode(run.compile, device) == "reduce-overhead",
            ignore_label=ignore_label,
        )

    def _refit(self, clock: FitClock, epoch: int, parts: FitParts, dist: DistInfo) -> int:
        """The schedule's total epochs before ``epoch``: refitted to a ``fit`` time limit."""
        run, cap = self.config.runtime, self.config.optimization.epochs
        if epoch == clock.start_epoch + 1:
            clock.first_epoch_s = time.perf_counter() - clock.started
        if run.fit_minutes is None or epoch < clock.start_epoch + 2:
            return clock.total
        fitted = epochs_within_time_limit(
            cap,  # the cap: a slow spell that passes gives its epochs back
            epochs_done=epoch - clock.start_epoch,
            next_epoch=epoch,
            elapsed_s=time.perf_counter() - clock.started,
            limit_s=60 * run.fit_minutes,
            first_epoch_s=clock.first_epoch_s,
        )
        fitted = round(reduce_mean({"e": fitted}, dist)["e"])
        # Said only when it moves by 2% of the configured epochs (each epoch's line shows it).
        if abs(fitted - clock.reported) >= max(1, cap // 50) and dist.is_main:
            change = "shortened" if fitted < clock.reported else "lengthened"
            print(f"time limit: the schedule is {change} to {fitted} epochs", file=sys.stderr)
            clock.reported = fitted
        clock.total = parts.scheduler.epochs = fitted
        return fitted

    def _train_epoch(
        self, parts: FitParts, loader: TrainLoader, epoch: int, clock: FitClock, dist: DistInfo
    ) -> dict[str, float]:
        """One epoch of steps; returns its metrics row, averaged over iterations and ranks."""
        epoch_start = time.perf_counter()
        parts.net.train()
        loader.set_epoch(epoch)
        parts.scheduler.step(epoch)
        sums: dict[str, Any] = {}  # loss sums as tensors on the device: no sync per step
        bar = progress_bar(self.config, dist, epoch, len(loader))
        bar_refreshed = time.perf_counter()
        grad_clip = self.config.optimization.optimizer.grad_clip
        for it, batch in enumerate(loader):
            parts.loss_fn.set_epoch(epoch + it / len(loader))
            check_labels(batch.seg, self.model_config.num_classes, "training batch",
                         ignore_label=parts.ignore_label)  # fmt: skip
            batch = batch.to(dist.device, non_blocking=True)
            if loader.augmentation is not None:  # the augmentation backend "device"
                batch = loader.augmentation(batch)
            if parts.graphed:  # CUDA graphs may reuse the last step's output memory
                torch.compiler.cudagraph_mark_step_begin()
            out = training_step(
                parts.net, parts.model, parts.loss_fn, parts.optimizer, parts.scaler, batch.image,
                targets(batch, parts.loss_fn), amp_dtype=parts.amp_dtype, grad_clip=grad_clip,
                valid={"seg": batch.has_seg}, dist=dist,
            )  # fmt: skip
            accumulate(sums, out)
            if bar is not None:
                bar.update(1)
                # The postfix reads the loss sums (a GPU sync): at most once a second.
                if time.perf_counter() - bar_refreshed >= 1.0 or it == len(loader) - 1:
                    done = (epoch - clock.start_epoch) * len(loader) + it + 1
                    left = (clock.total - epoch) * len(loader) - it - 1
                    bar.set_postfix(postfix(sums, done, left, self.batch_size, clock.started))
                    bar_refreshed = time.perf_counter()
        if bar is not None:
            bar.close()
        row = {"epoch": epoch, "lr": parts.optimizer.param_groups[0]["lr"], **means(sums)}
        row = {**reduce_mean(row, dist), "epoch": epoch}
        row["epoch_seconds"] = time.perf_counter() - epoch_start
        check_finite(parts.model, epoch, row, self.checkpoint_dir / LAST)
        return row

    def _validate(self, parts: FitParts) -> dict[str, float]:
        return validate(
            parts.model,
            self.val_cases,
            device=next(parts.model.parameters()).device,
            label_names=self.label_names,
            patch_size=self.patch_size,
            overlap=self.config.runtime.val_overlap,
            autocast_dtype=parts.amp_dtype,
        )

    def _checkpoint(
        self,
        parts: FitParts,
        row: dict[str, float],
        epoch: int,
        best: tuple[float, int] | None,
        dist: DistInfo,
    ) -> tuple[float, int] | None:
        """Write ``last.pt`` (and ``best.pt`` when the score improved); returns the best."""
        score = row.get("val/score")
        improved = score is not None and (best is None or score > best[0])
        if improved:
            best = (float(score), epoch)  # type: ignore[arg-type]
        state = training_state(
            self.config, epoch, parts, best, world_size=dist.world_size,
            patch_size=self.patch_size, batch_size=self.batch_size,
        )  # fmt: skip
        self._save(parts.model, LAST, state)
        if improved:
            self._save(parts.model, BEST, state)
        return best

    def _time_is_up(self, started: float, epoch: int, dist: DistInfo) -> bool:
        """A ``stop`` time limit passed: stop after this epoch (resumable)."""
        limit = self.config.runtime.stop_minutes
        if limit is None or not agree(time.perf_counter() - started > 60 * limit, dist):
            return False
        if dist.is_main:
            print(f"time limit of {limit:g} min reached after epoch {epoch + 1}; "
                  "continue with --resume", file=sys.stderr)  # fmt: skip
        return True

    def _loader_config(self, dist: DistInfo) -> LoaderConfig:
        rarest = self.plan.fingerprint.rarest_foreground_label  # lesion_label None: this one
        return LoaderConfig.from_section(
            self.config.data.with_lesion_label(rarest),
            patch_size=self.patch_size,
            batch_size=self.batch_size // dist.world_size,
            iterations_per_epoch=self.config.optimization.iterations_per_epoch,
            seed=self.config.runtime.seed,
            pin_memory=dist.device.type == "cuda",
        )

    def _save(self, model: MultiTaskUNet, name: str, state: dict[str, Any]) -> None:
        save_checkpoint(
            self.checkpoint_dir / name,
            model,
            plan=self.plan,
            class_names=self.class_names,
            label_names=self.label_names,
            training=state,
        )

    def _restore(self, parts: FitParts, dist: DistInfo) -> tuple[int, tuple[float, int] | None]:
        """Restore ``last.pt`` into ``parts``; returns the next epoch and the best score."""
        return restore_training_state(self.checkpoint_dir / LAST, self.config, parts, dist)
