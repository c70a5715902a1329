"""The two training loops of ``bench_train_loop`` and the clock they run under.

:class:`OurLoop` drives our ``Trainer``'s epoch loop, :class:`NnunetLoop` nnU-Net 2.8's
``nnUNetTrainer``, each built once per plan and then run once per number of loader workers;
:class:`LoopTimer` times a loop's steady state and the time it waits for batches.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gc
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from benchmarks.bench_network import ARCHS
from benchmarks.common import sync

_SMALL = copy.deepcopy(ARCHS["nnunet_3d_fullres_resenc_m"])
_SMALL["arch_kwargs"].update(
    n_stages=5, features_per_stage=[16, 32, 64, 128, 128], kernel_sizes=[[3, 3, 3]] * 5,
    strides=[[1, 1, 1]] + [[2, 2, 2]] * 4, n_blocks_per_stage=[1, 2, 2, 2, 2],
    n_conv_per_stage_decoder=[1] * 4,
)  # fmt: skip
PLANS: dict[str, dict[str, Any]] = {
    "study": {"architecture": ARCHS["nnunet_3d_fullres_plain"], "patch": (64, 128, 192),
              "batch": 2, "network": "nnU-Net 3d_fullres PlainConvUNet (the study's)"},
    "small": {"architecture": _SMALL, "patch": (32, 48, 64), "batch": 2,
              "network": "small_residual's layout as nnU-Net's ResidualEncoderUNet "
                         "(the CPU budget plan's network and patch)"},
}  # fmt: skip


@dataclasses.dataclass
class LoopTimer:
    """Times one training loop: warm-up, optional drain of ready batches, then the steady state.

    ``fetch`` wraps every ``next()`` on the loader; the loop stops when ``finished``, then calls
    ``stop``. ``resident`` gives the bytes of the loop's own weights, gradients and optimiser
    state, for its peak memory when another loop's tensors stay on the same GPU.
    """

    device: str
    warmup: int
    drain: int
    timed: int
    resident: Callable[[], int] | None = None
    threshold_s: float = 0.005
    clock: Callable[[], float] = time.perf_counter
    warmup_iterations: int = 0
    timed_iterations: int = 0
    wait_s: float = 0.0
    start: float | None = None
    seconds: float | None = None
    peak_memory_mib: float | None = None
    _emptied: bool = False
    _base: int = 0
    _own: int = 0

    @property
    def max_iterations(self) -> int:
        return self.warmup + self.drain + self.timed

    @property
    def finished(self) -> bool:
        return self.timed_iterations >= self.timed

    def fetch(self, next_batch: Callable[[], Any]) -> Any:
        ready = self.warmup_iterations >= self.warmup and (
            self._emptied or self.warmup_iterations >= self.warmup + self.drain
        )
        if self.start is None and ready:
            self._begin()
        t0 = self.clock()
        batch = next_batch()
        waited = self.clock() - t0
        if self.start is None:
            self.warmup_iterations += 1
            self._emptied |= self.warmup_iterations > self.warmup and waited > self.threshold_s
        else:
            self.wait_s += waited
            self.timed_iterations += 1
        return batch

    def _begin(self) -> None:
        sync(self.device)
        if self.device.startswith("cuda"):
            self._base = torch.cuda.memory_allocated()
            self._own = self.resident() if self.resident else 0
            torch.cuda.reset_peak_memory_stats()
        self.start = self.clock()

    def stop(self) -> None:
        sync(self.device)
        if self.start is None or not self.timed_iterations:
            raise RuntimeError("the loop stopped before any timed iteration; raise --timed")
        self.seconds = self.clock() - self.start
        if self.device.startswith("cuda"):
            peak = torch.cuda.max_memory_allocated() - self._base + self._own
            self.peak_memory_mib = peak / 2**20

    def result(self) -> dict[str, Any]:
        assert self.seconds is not None, "call stop() first"
        return {
            "it_per_s": self.timed_iterations / self.seconds,
            "wait_fraction": self.wait_s / self.seconds,
            "iterations": self.timed_iterations,
            "seconds": self.seconds,
            "warmup_iterations": self.warmup_iterations,
            "peak_memory_mib": self.peak_memory_mib,
        }


def resident_bytes(params: Any, optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the parameters, their gradients and the optimiser state on a GPU."""
    tensors = [p for p in params] + [p.grad for p in params if p.grad is not None]
    tensors += [v for s in optimizer.state.values() for v in s.values() if torch.is_tensor(v)]
    seen = {t.data_ptr(): t.untyped_storage().nbytes() for t in tensors if t.is_cuda}
    return sum(seen.values())


class TimedBatches:
    """What the Trainer's epoch loop iterates: ``batches`` through a :class:`LoopTimer`."""

    def __init__(self, batches: Any, timer: LoopTimer) -> None:
        self.batches, self.timer = batches, timer

    def __getattr__(self, name: str) -> Any:  # what else the Trainer reads, e.g. augmentation
        return getattr(self.batches, name)

    def __len__(self) -> int:
        return self.timer.max_iterations

    def __iter__(self) -> Iterator[Any]:
        it = iter(self.batches)
        while not self.timer.finished:
            yield self.timer.fetch(lambda: next(it))
        self.timer.stop()


def device_augmentation(patch: tuple[int, int, int]) -> Any:
    """nnU-Net's augmentation with ``backend="device"``, or None where the library lacks it."""
    from multitask_unet.data.sampling.augmentation import AugmentationConfig

    if "backend" not in {f.name for f in dataclasses.fields(AugmentationConfig)}:
        return None
    return dataclasses.replace(AugmentationConfig.nnunet(patch), backend="device")


class OurLoop:
    """Our Trainer, built once (model, loss, optimiser, compile); each run is one epoch loop."""

    def __init__(self, cache: Path, plan: str, device: str, *, compile: str, run_dir: Path,
                 augmentation: Any = None) -> None:  # fmt: skip
        from multitask_unet.data.preprocessing.cache import load_cached_plan
        from multitask_unet.data.sampling.loader import cache_entries
        from multitask_unet.interop.nnunet import config_from_plans
        from multitask_unet.training import TrainConfig, Trainer
        from multitask_unet.training.distributed import setup_distributed
        from multitask_unet.training.fit_parts import FitClock
        from multitask_unet.training.model_spec import ModelSpec

        spec, cached = PLANS[plan], load_cached_plan(cache)
        network = config_from_plans(
            {"configurations": {"3d_fullres": {"architecture": spec["architecture"]}}},
            in_channels=cached.fingerprint.num_channels,
            num_classes=max(cached.preprocessing.labels) + 1,
        )
        data: dict[str, Any] = {"patch_size": list(spec["patch"]), "batch_size": spec["batch"]}
        data["class_weights"] = "none"  # cases drawn uniformly, as nnU-Net draws them
        if augmentation is not None:
            data["augmentation"] = augmentation.to_dict()
        config = TrainConfig.from_dict({
            "model": ModelSpec.from_model_config(network).to_dict(), "data": data,
            "optimization": {"epochs": 1},
            "runtime": {"device": device, "compile": compile, "progress": False, "val_every": 0},
        })  # fmt: skip
        strides = spec["architecture"]["arch_kwargs"]["strides"]
        divisor = tuple(math.prod(s[axis] for s in strides) for axis in range(3))
        cached = dataclasses.replace(cached, patch_size=spec["patch"], size_divisor=divisor)
        self.trainer = Trainer(config, run_dir, plan=cached, train_cases=cache_entries(cache))
        self.dist = setup_distributed(device)
        self.parts = self.trainer._build(self.dist)
        self.clock = FitClock(time.perf_counter(), 0, 1)

    def resident(self) -> int:
        params = [*self.parts.model.parameters(), *self.parts.loss_fn.parameters()]
        return resident_bytes(params, self.parts.optimizer)

    def loader(self, workers: int, iterations: int) -> Any:
        from multitask_unet.data.sampling.loader import TrainLoader

        cfg = self.trainer._loader_config(self.dist)
        cfg = dataclasses.replace(cfg, num_workers=workers, iterations_per_epoch=iterations)
        return TrainLoader(self.trainer.train_cases, cfg, rank=0, world_size=1)

    def run(self, timer: LoopTimer, workers: int | None) -> dict[str, Any]:
        """One loop with ``workers`` loader processes; None: step-only, over one fixed batch."""
        timer.resident = self.resident
        if workers is None:
            batch = next(iter(self.loader(0, 1)))
            cuda = self.dist.device.type == "cuda"
            batches: Any = FixedBatches(batch.pin_memory() if cuda else batch)
        else:
            batches = self.loader(workers, timer.max_iterations)
        self.trainer._train_epoch(
            self.parts, TimedBatches(batches, timer), 0, self.clock, self.dist
        )
        del batches
        gc.collect()  # shuts the loader's persistent workers down
        return timer.result()


class FixedBatches:
    """One batch, over and over: a step-only loop's loader (no augmentation on the device)."""

    augmentation = None

    def __init__(self, batch: Any) -> None:
        self.batch = batch

    def set_epoch(self, epoch: int) -> None:
        pass

    def __iter__(self) -> Iterator[Any]:
        return itertools.repeat(self.batch)


class NnunetLoop:
    """nnU-Net's trainer on the dataset of :func:`~benchmarks.common.write_nnunet_dataset`."""

    def __init__(self, folder: Path, device: str, *, compile: str, log: Path) -> None:
        # nnU-Net reads its folders (and nnUNet_compile) from the environment when it uses them
        env = {"nnUNet_preprocessed": str(folder.parent), "nnUNet_results": str(folder / "out")}
        os.environ.update(env | ({"nnUNet_compile": "f"} if compile == "off" else {}))
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

        plans = json.loads((folder / "nnUNetPlans.json").read_text()) | {"continue_training": False}
        dataset = json.loads((folder / "dataset.json").read_text())
        self.log, self.started = log, False
        with self._quiet():
            self.trainer = nnUNetTrainer(plans, "3d_fullres", 0, dataset, torch.device(device))
            self.trainer.disable_checkpointing = True
            self.trainer.initialize()
        if device.startswith("cuda"):
            torch.backends.cudnn.benchmark = True  # as its run_training sets it

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        with open(self.log, "a") as handle, contextlib.redirect_stdout(handle):
            yield

    def workers(self, k: int) -> None:
        """(Re)start its training and validation loaders with ``nnUNet_n_proc_DA = k``."""
        self.close()
        os.environ.update({"nnUNet_n_proc_DA": str(k)})
        tr = self.trainer
        with self._quiet():
            if not self.started:
                tr.on_train_start()
                self.started = True
            else:
                tr.dataloader_train, tr.dataloader_val = tr.get_dataloaders()
            tr.on_epoch_start()
            tr.on_train_epoch_start()

    def resident(self) -> int:
        return resident_bytes(list(self.trainer.network.parameters()), self.trainer.optimizer)

    def run(self, timer: LoopTimer, *, fixed: bool = False) -> dict[str, Any]:
        """``run_training``'s inner loop; with ``fixed``, its ``train_step`` on one batch (the
        loaders are stopped first)."""
        tr, timer.resident = self.trainer, self.resident
        if fixed:
            batch = next(tr.dataloader_train)
            self.close()
        source = (lambda: batch) if fixed else (lambda: next(tr.dataloader_train))
        outputs = []
        while not timer.finished:
            outputs.append(tr.train_step(timer.fetch(source)))
        timer.stop()
        return timer.result()

    def close(self) -> None:
        for loader in (self.trainer.dataloader_train, self.trainer.dataloader_val):
            if hasattr(loader, "_finish"):
                with self._quiet():
                    loader._finish()
        self.trainer.dataloader_train = self.trainer.dataloader_val = None


def depth(side: str, k: int) -> int:
    """Batches a loader can hold ready: ours ``prefetch_factor`` (4) per worker; nnU-Net's two
    queues of ``max(6, k // 2)`` and one batch in each worker's hands."""
    return 4 * k if side == "ours" else 2 * max(6, k // 2) + k
