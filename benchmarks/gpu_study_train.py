"""Training speed and peak memory of the pancreas study's configuration on one GPU.

Builds exactly what the :class:`~multitask_unet.training.Trainer` builds from a study config
(``examples/pancreas/configs/study_*.yaml``: the nnU-Net ``3d_fullres`` network with the
variant's head, ``L = L_seg + 0.3 L_cls`` with deep supervision, nnU-Net's SGD (fused on CUDA),
poly schedule, gradient clipping at 12, the Trainer's autocast dtype and, unless ``--compile``
says otherwise, its ``compile`` setting: compiled on CUDA) and runs ``--iterations`` optimiser steps
on synthetic batches of the study's shape (batch 8, a ``(64, 128, 192)`` patch: the plan's
patch for the pancreas crops on this network). Data loading is left out (``bench_data.py``
measures it); the numbers are the GPU's share of a training step.

Reported: iterations per second and per-iteration times (median, after ``--warmup`` steps),
samples per second, and peak memory (``torch.cuda.max_memory_allocated`` and ``_reserved``).

Usage (a lent GPU, about a minute including start-up)::

    python benchmarks/gpu_study_train.py --iterations 50 \\
        --output benchmarks/results/pancreas-study-train-cuda.json
    python benchmarks/gpu_study_train.py --device cpu --iterations 2     # a correctness check

Not part of the test run (``tests/examples`` runs it on the CPU with a tiny network).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/gpu_study_train.py` from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks.common import environment  # noqa: E402
from multitask_unet.models import MultiTaskUNet  # noqa: E402
from multitask_unet.training import PolyLR, TrainConfig, build_optimizer  # noqa: E402
from multitask_unet.training.builders import build_loss, build_model_config  # noqa: E402
from multitask_unet.training.compiling import COMPILE_MODES, compile_mode, compiled  # noqa: E402

DEFAULT_CONFIG = ROOT / "examples" / "pancreas" / "configs" / "study_panda_balanced.yaml"
DEFAULT_PATCH = (64, 128, 192)
#: The CPU check's defaults (the study's shape takes minutes per step on a small CPU).
CPU_CHECK_BATCH, CPU_CHECK_PATCH = 2, (32, 64, 64)
#: Class counts of the study's 252 training cases (subtypes 0, 1, 2), for weighted losses.
STUDY_COUNTS = (62, 106, 84)


def _amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The Trainer's rule: bf16 on CUDA (fp16 where bf16 is unsupported), float32 on the CPU."""
    if device.type != "cuda" or mode == "off":
        return None
    if mode == "fp16" or (mode == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def _batch(
    batch: int, patch: tuple[int, int, int], classes: int, device: torch.device, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A CT-like batch: noise image, a label map with blobs of labels 1 and 2, case classes."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, 1, *patch, generator=gen)
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, n) for n in patch], indexing="ij"))
    radius = grid.pow(2).sum(0).sqrt()
    seg = torch.zeros(batch, 1, *patch, dtype=torch.long)
    seg[:, 0, radius < 0.6] = 1
    seg[:, 0, radius < 0.25] = 2
    label = torch.randint(0, classes, (batch,), generator=gen)
    return image.to(device), seg.to(device), label.to(device)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark and return the result (also written to ``--output`` when given)."""
    device = torch.device(args.device)
    config = TrainConfig.load(args.config)
    spec = config.model
    if args.preset:
        spec = type(spec).from_dict({**spec.to_dict(), "preset": args.preset})
    batch = args.batch_size or config.data.batch_size or 8
    patch = tuple(args.patch or config.data.patch_size or DEFAULT_PATCH)
    if device.type == "cpu":  # a correctness check: small unless asked otherwise
        batch = args.batch_size or CPU_CHECK_BATCH
        patch = tuple(args.patch or CPU_CHECK_PATCH)
    warmup = args.warmup if args.warmup is not None else (5 if device.type == "cuda" else 1)
    torch.manual_seed(config.runtime.seed)
    model = MultiTaskUNet(
        build_model_config(spec, in_channels=1, seg_classes=3, case_classes=len(STUDY_COUNTS))
    ).to(device)
    if any(p % d for p, d in zip(patch, model.size_divisor)):
        raise SystemExit(f"--patch {patch} must be divisible by {model.size_divisor}")
    loss_fn = build_loss(config, model, class_counts=STUDY_COUNTS).to(device)
    params = [*model.parameters(), *loss_fn.parameters()]
    optimizer = build_optimizer(params, config.optimization.optimizer, fused=device.type == "cuda")
    setting = args.compile or config.runtime.compile
    net = compiled(model, setting, device)  # the warm-up steps include the compilation
    scheduler = PolyLR(
        optimizer, config.optimization.epochs, exponent=config.optimization.optimizer.poly_exponent
    )
    amp = _amp_dtype(config.runtime.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    image, seg, label = _batch(batch, patch, len(STUDY_COUNTS), device, config.runtime.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.reset_peak_memory_stats(device)
    model.train()
    scheduler.step(0)

    times: list[float] = []
    losses: list[float] = []
    for _ in range(warmup + args.iterations):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            out = loss_fn(net(image), {"seg": seg, "cls": label})
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(out.total).backward()
        scaler.unscale_(optimizer)
        if config.optimization.optimizer.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.optimization.optimizer.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
        losses.append(float(out.total.detach()))
    timed = times[warmup:]
    total = sum(timed)
    result: dict[str, Any] = {
        "benchmark": "gpu_study_train",
        "environment": environment(str(device), str(amp or torch.float32).removeprefix("torch.")),
        "settings": {
            "config": os.path.relpath(args.config, ROOT),
            "preset": spec.preset,
            "head": spec.head,
            "batch_size": batch,
            "patch_size": list(patch),
            "compile": compile_mode(setting, device) or "off",
            "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "optimizer": config.optimization.optimizer.name,
            "warmup_iterations": warmup,
            "timed_iterations": args.iterations,
            "data": "synthetic batches (data loading not timed)",
        },
        "results": {
            "iterations_per_s": args.iterations / total,
            "samples_per_s": args.iterations * batch / total,
            "median_iteration_s": statistics.median(timed),
            "first_iteration_s": times[0],
            "loss_first_last": [losses[0], losses[-1]],
        },
    }
    if device.type == "cuda":
        gib = 2**30
        result["results"]["peak_memory_allocated_gib"] = (
            torch.cuda.max_memory_allocated(device) / gib
        )
        result["results"]["peak_memory_reserved_gib"] = torch.cuda.max_memory_reserved(device) / gib
    else:
        result["results"]["peak_memory_allocated_gib"] = None
    if not all(torch.isfinite(torch.tensor(losses))):
        raise SystemExit(f"non-finite loss during the benchmark: {losses}")
    if args.output:
        _write(Path(args.output), result)
    return result


def _write(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, path)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.gpu_study_train``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="study config YAML")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--iterations", type=int, default=50, help="timed optimiser steps")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 5; CPU 1)")
    parser.add_argument("--batch-size", type=int, help="default: the config's (8); CPU 2")
    parser.add_argument(
        "--patch", type=int, nargs=3, help=f"(D H W), default {DEFAULT_PATCH}; CPU (32 64 64)"
    )
    parser.add_argument("--preset", help="replace the config's network preset (tests)")
    parser.add_argument(
        "--compile", choices=COMPILE_MODES, help="replace the config's compile setting (auto)"
    )
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    parser.add_argument("--output", type=Path, help="write the result JSON here")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """:func:`build_parser`'s arguments, with the step counts checked."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.iterations < 1 or (args.warmup is not None and args.warmup < 0):
        parser.error("--iterations must be >= 1 and --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; run on a GPU or pass --device cpu for a check")
    result = run(args)
    res = result["results"]
    peak = res["peak_memory_allocated_gib"]
    print(json.dumps(result["settings"]))
    print(
        f"{res['iterations_per_s']:.3f} it/s ({res['samples_per_s']:.2f} samples/s), median "
        f"{res['median_iteration_s'] * 1000:.1f} ms/it"
        + (f", peak memory {peak:.2f} GiB allocated" if peak is not None else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
