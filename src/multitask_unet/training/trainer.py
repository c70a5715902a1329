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
    >>> config = TrainConfig.from_dict({"model": {"preset": "tiny_plain"}, "epochs": 1,
    ...     "iterations_per_epoch": 2, "batch_size": 2, "patch_size": [16, 16, 16],
    ...     "progress": False})
    >>> result = train(root, tempfile.mkdtemp(), config, workers=1, intensity_samples=10_000,
    ...                verbose=False)  # doctest: +ELLIPSIS
    epoch 1/1  lr=0.01  loss=...
    >>> result.epochs, "loss" in result.metrics
    (1, True)
"""

from __future__ import annotations

import dataclasses
import os
import random
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from multitask_unet.checkpoints import load_checkpoint, save_checkpoint
from multitask_unet.data.augmentation import AugmentationConfig
from multitask_unet.data.batch import Batch
from multitask_unet.data.loader import CacheEntry, LoaderConfig, TrainLoader
from multitask_unet.data.planning import Plan
from multitask_unet.errors import ConfigError, TrainingError
from multitask_unet.losses import MultiTaskLoss, check_labels, labels_checked
from multitask_unet.models import MultiTaskUNet
from multitask_unet.training.budget_schedule import epochs_within_budget
from multitask_unet.training.builders import build_loss, build_model_config
from multitask_unet.training.compiling import compile_mode, compiled
from multitask_unet.training.config import TrainConfig
from multitask_unet.training.distributed import DistInfo, reduce_mean, setup_distributed
from multitask_unet.training.metrics import MetricsLog
from multitask_unet.training.precision import autocast, autocast_dtype
from multitask_unet.training.progress import accumulate, means, postfix, print_row, progress_bar
from multitask_unet.training.schedule import PolyLR, build_optimizer
from multitask_unet.training.state import STATE_VERSION, rng_state, set_rng_state
from multitask_unet.training.validation import validate

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
        train_cases: Cached training cases (:func:`multitask_unet.data.loader.cache_entries`).
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
        self.label_names = dict(label_names or {f"label{v}": v for v in labels})
        self.patch_size = tuple(config.patch_size or plan.patch_size)
        self.batch_size = config.batch_size or plan.batch_size
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
        """Train for ``config.epochs`` epochs (continuing from ``last.pt`` with ``resume``)."""
        started = time.perf_counter()
        cfg = self.config
        dist = setup_distributed(cfg.device)
        device = dist.device
        if self.batch_size % dist.world_size:
            raise ConfigError(
                f"batch_size {self.batch_size} does not split over {dist.world_size} processes; "
                f"use a multiple of {dist.world_size}"
            )
        _seed_everything(cfg.seed)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        amp_dtype = autocast_dtype(cfg.amp, device)
        if device.type == "cuda" and not cfg.deterministic:
            torch.backends.cudnn.benchmark = True  # fixed patch shapes: let cuDNN pick (nnU-Net)

        # Model, loss, optimiser, schedule, AMP scaler.
        model = MultiTaskUNet(self.model_config).to(device)
        _check_patch(model, self.patch_size)
        labels = [e.label for e in self.train_cases if e.label is not None]
        counts = np.bincount(labels, minlength=len(self.class_names)).tolist() if labels else []
        loss_fn = build_loss(cfg, model, class_counts=counts).to(device)
        optimizer = build_optimizer([*model.parameters(), *loss_fn.parameters()], cfg.optimizer,
                                    fused=device.type == "cuda")  # fmt: skip
        scheduler = PolyLR(optimizer, cfg.epochs, exponent=cfg.optimizer.poly_exponent)
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        ignore_label = next(
            (
                m.ignore_label
                for m in loss_fn.modules()
                if getattr(m, "ignore_label", None) is not None
            ),
            None,
        )

        # Resume: weights, optimiser, schedule, scaler, loss state, RNG and the epoch counter.
        start_epoch, best = 0, None
        if resume:
            start_epoch, best = self._restore(model, loss_fn, optimizer, scheduler, scaler, dist)
        elif dist.is_main and (self.checkpoint_dir / LAST).exists():
            raise ConfigError(
                f"{self.run_dir} already holds a run ({self.checkpoint_dir / LAST}); resume it "
                "with --resume (resume=True) or choose a new run folder"
            )
        if dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(self.run_dir / "config.yaml")
        net = compiled(model, cfg.compile, device)  # the training forward; `model` is saved
        graphed = compile_mode(cfg.compile, device) == "reduce-overhead"
        if dist.distributed:
            ids = [device.index] if device.type == "cuda" else None
            unused = bool(set(model.heads) - set(loss_fn.losses))  # a head without a loss term
            net = nn.parallel.DistributedDataParallel(
                net, device_ids=ids, find_unused_parameters=unused
            )

        # Data: balanced case draws, sharded over ranks; batches depend on (seed, epoch, rank).
        loader = TrainLoader(self.train_cases, self._loader_config(dist), rank=dist.rank,
                             world_size=dist.world_size)  # fmt: skip
        log = MetricsLog(self.run_dir) if dist.is_main else None
        if log is not None:
            log.resume(start_epoch)
        row: dict[str, float] = {}
        total_epochs = reported_epochs = cfg.epochs  # refitted to time_budget_minutes
        first_epoch_s = 0.0
        for epoch in range(start_epoch, cfg.epochs):
            if epoch == start_epoch + 1:
                first_epoch_s = time.perf_counter() - started
            if cfg.time_budget_minutes is not None and epoch >= start_epoch + 2:
                fitted = epochs_within_budget(
                    cfg.epochs,  # the cap: a slow spell that passes gives its epochs back
                    epochs_done=epoch - start_epoch,
                    next_epoch=epoch,
                    elapsed_s=time.perf_counter() - started,
                    budget_s=60 * cfg.time_budget_minutes,
                    first_epoch_s=first_epoch_s,
                )
                fitted = round(reduce_mean({"e": fitted}, dist)["e"])
                # Refitted every epoch; said only when it moves by 2% of the configured epochs
                # (each epoch's log line shows the current total).
                if abs(fitted - reported_epochs) >= max(1, cfg.epochs // 50) and dist.is_main:
                    change = "shortened" if fitted < reported_epochs else "lengthened"
                    print(f"time budget: the schedule is {change} to {fitted} epochs",
                          file=sys.stderr)  # fmt: skip
                    reported_epochs = fitted
                total_epochs = scheduler.epochs = fitted
            epoch_start = time.perf_counter()
            net.train()
            loader.set_epoch(epoch)
            scheduler.step(epoch)
            sums: dict[str, Any] = {}  # loss sums as tensors on the device: no sync per step
            bar = progress_bar(cfg, dist, epoch, len(loader))
            bar_refreshed = time.perf_counter()
            for it, batch in enumerate(loader):
                loss_fn.set_epoch(epoch + it / len(loader))
                # Labels checked here on the CPU, so the loss needs no GPU round trip for it.
                check_labels(batch.seg, self.model_config.num_classes, "training batch",
                             ignore_label=ignore_label)  # fmt: skip
                batch = batch.to(device, non_blocking=True)
                if graphed:  # CUDA graphs may reuse the last step's output memory
                    torch.compiler.cudagraph_mark_step_begin()
                with labels_checked(), autocast(amp_dtype, device):
                    outputs = net(batch.image)
                    out = loss_fn(outputs, _targets(batch, loss_fn), valid={"seg": batch.has_seg})
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(out.total).backward()
                _sync_loss_grads(loss_fn, dist)
                scaler.unscale_(optimizer)
                if cfg.optimizer.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.optimizer.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                accumulate(sums, out)
                if bar is not None:
                    bar.update(1)
                    # The postfix reads the loss sums (a GPU sync): at most once a second.
                    if time.perf_counter() - bar_refreshed >= 1.0 or it == len(loader) - 1:
                        done = (epoch - start_epoch) * len(loader) + it + 1
                        left = (total_epochs - epoch) * len(loader) - it - 1
                        bar.set_postfix(postfix(sums, done, left, self.batch_size, started))
                        bar_refreshed = time.perf_counter()
            if bar is not None:
                bar.close()

            # Epoch metrics, averaged over the iterations and the ranks.
            row = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], **means(sums)}
            row = {**reduce_mean(row, dist), "epoch": epoch}
            row["epoch_seconds"] = time.perf_counter() - epoch_start
            _check_finite(model, epoch, row, self.checkpoint_dir / LAST)
            last_epoch = epoch == total_epochs - 1
            if (
                self.val_cases
                and cfg.val_every
                and ((epoch + 1) % cfg.val_every == 0 or last_epoch)
            ):
                if dist.is_main:
                    row.update(
                        validate(
                            model,
                            self.val_cases,
                            device=device,
                            label_names=self.label_names,
                            patch_size=self.patch_size,
                            overlap=cfg.val_overlap,
                            autocast_dtype=amp_dtype,
                        )
                    )
                _barrier(dist)

            # Checkpoints (rank 0): last.pt every epoch, best.pt when the score improves.
            if dist.is_main:
                score = row.get("val/score")
                improved = score is not None and (best is None or score > best[0])
                if improved:
                    best = (float(score), epoch)
                state = self._state(epoch, optimizer, scheduler, scaler, loss_fn, best, dist)
                self._save(model, LAST, state)
                if improved:
                    self._save(model, BEST, state)
                assert log is not None
                log.append(row)
                log.plot()
                if not cfg.progress:
                    print_row(row, total_epochs)
            _barrier(dist)
            if last_epoch:
                break
            limit = cfg.time_limit_minutes
            if limit is not None and _agree(time.perf_counter() - started > 60 * limit, dist):
                if dist.is_main and not last_epoch:
                    print(f"time limit of {limit:g} min reached after epoch {epoch + 1}; "
                          "continue with --resume", file=sys.stderr)  # fmt: skip
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
    def _loader_config(self, dist: DistInfo) -> LoaderConfig:
        cfg = self.config
        aug = cfg.augmentation if cfg.augment else AugmentationConfig.off()
        return LoaderConfig(
            patch_size=self.patch_size,  # type: ignore[arg-type]
            batch_size=self.batch_size // dist.world_size,
            iterations_per_epoch=cfg.iterations_per_epoch,
            foreground_probability=cfg.foreground_probability,
            lesion_label=cfg.lesion_label if cfg.lesion_probability > 0 else None,
            lesion_probability=cfg.lesion_probability,
            weights_mode=cfg.weights_mode,
            max_oversampling=cfg.max_oversampling,
            augmentation=aug,
            num_workers=cfg.num_workers,
            seed=cfg.seed,
            pin_memory=dist.device.type == "cuda",
        )

    def _state(
        self,
        epoch: int,
        optimizer: torch.optim.Optimizer,
        scheduler: PolyLR,
        scaler: torch.amp.GradScaler,
        loss_fn: MultiTaskLoss,
        best: tuple[float, int] | None,
        dist: DistInfo,
    ) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "config": self.config.to_dict(),
            "epoch": epoch,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "loss": loss_fn.state_dict(),
            "rng": rng_state(),
            "best_score": None if best is None else best[0],
            "best_epoch": None if best is None else best[1],
            "world_size": dist.world_size,
            "patch_size": list(self.patch_size),
            "batch_size": self.batch_size,
        }

    def _save(self, model: MultiTaskUNet, name: str, state: dict[str, Any]) -> None:
        save_checkpoint(
            self.checkpoint_dir / name,
            model,
            plan=self.plan,
            class_names=self.class_names,
            label_names=self.label_names,
            training=state,
        )

    def _restore(
        self,
        model: MultiTaskUNet,
        loss_fn: MultiTaskLoss,
        optimizer: torch.optim.Optimizer,
        scheduler: PolyLR,
        scaler: torch.amp.GradScaler,
        dist: DistInfo,
    ) -> tuple[int, tuple[float, int] | None]:
        path = self.checkpoint_dir / LAST
        if not path.is_file():
            raise ConfigError(
                f"nothing to resume: {path} does not exist; start the run without --resume"
            )
        ckpt = load_checkpoint(path, map_location=dist.device)
        state = ckpt.training or {}
        if state.get("version") != STATE_VERSION:
            raise ConfigError(f"{path} holds no resumable training state (version {STATE_VERSION})")
        saved = TrainConfig.from_dict(state["config"])
        changed = sorted(
            k for k, v in self.config.resumable_dict().items() if saved.resumable_dict().get(k) != v
        )
        if changed:
            raise ConfigError(
                f"cannot resume {self.run_dir}: the options {changed} differ from the saved run "
                f"({self.run_dir / 'config.yaml'}); resume with the same config or start a new run"
            )
        if state.get("world_size", 1) != dist.world_size:
            print(
                f"warning: resuming a run of {state['world_size']} process(es) on "
                f"{dist.world_size}; the batches of the remaining epochs change",
                file=sys.stderr,
            )
        model.load_state_dict(ckpt.state_dict)
        loss_fn.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scheduler.epochs = self.config.epochs  # a resumed run may train longer
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        best = (
            None if state.get("best_score") is None else (state["best_score"], state["best_epoch"])
        )
        return int(state["epoch"]) + 1, best


# -- small helpers ----------------------------------------------------------------------------------
def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _check_finite(model: nn.Module, epoch: int, row: dict[str, float], last: Path) -> None:
    """Stop before a checkpoint is written when the weights are no longer finite.

    A NaN weight never recovers: every later step and prediction would be NaN. One check per
    epoch (a single reduction over the weights) keeps ``last.pt`` at the last finite epoch.
    """
    if all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        return
    kept = f"{last} still holds epoch {epoch}" if epoch and last.exists() else "no checkpoint kept"
    raise TrainingError(
        f"the network's weights became NaN or infinite in epoch {epoch + 1} (mean loss "
        f"{row.get('loss', float('nan')):.4g}); {kept}. Lower optimizer.lr, set amp='off', or "
        "check the images' intensities and the normalisation in the plan"
    )


def _check_patch(model: MultiTaskUNet, patch: Sequence[int]) -> None:
    bad = [p % d for p, d in zip(patch, model.size_divisor)]
    if any(bad):
        raise ConfigError(
            f"patch_size {tuple(patch)} is not divisible by the network's size_divisor "
            f"{model.size_divisor}; choose multiples (e.g. with --patch-size)"
        )


def _targets(batch: Batch, loss_fn: MultiTaskLoss) -> dict[str, torch.Tensor | None]:
    """Loss targets by key: the label map for ``seg``, the case class for every head."""
    targets: dict[str, torch.Tensor | None] = {}
    for key in loss_fn.losses:
        targets[key] = batch.seg.long() if key == "seg" else batch.label
    return targets


def _sync_loss_grads(loss_fn: nn.Module, dist: DistInfo) -> None:
    """Average the gradients of learned loss weights over ranks (DDP only syncs the model's)."""
    if not dist.distributed:
        return
    for p in loss_fn.parameters():
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad)
            p.grad /= dist.world_size


def _agree(flag: bool, dist: DistInfo) -> bool:
    """True on every rank when rank 0 says so (ranks' clocks differ slightly)."""
    if not dist.distributed:
        return flag
    value = torch.tensor([float(flag)], device=dist.device)
    torch.distributed.broadcast(value, src=0)
    return bool(value.item())


def _barrier(dist: DistInfo) -> None:
    if dist.distributed:
        torch.distributed.barrier()
