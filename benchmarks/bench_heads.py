"""Cost of each classification head: forward+backward time with the head / segmentation only.

Every variant is the same network (same preset, same seed, so the same encoder and decoder
weights) and the same input; the only difference is the classification head and its loss
term. One training step is ``model(x)`` in train mode (deep supervision on), cross-entropy on
``"seg"`` and every ``"seg_deep"`` output, plus ``0.3 *`` the head's loss (cross-entropy, or
binary cross-entropy for one-vs-rest), then ``backward``. Repetitions are interleaved (every
round runs each variant once, in a rotated order) and each head's ratio is taken per round
against the segmentation-only step of the same round; the reported ratio is the median.

On CPU the clock is the process's CPU time by default (``--clock cpu``): on a machine shared
with other jobs it measures the work done rather than the time spent waiting for a core
(wall-clock times are recorded too). As a low-noise cross-check, each head's own forward +
backward is also timed alone on precomputed features (``head_only_seconds``), giving
``estimated_ratio = 1 + head_only / segmentation step``.

``--profile DIR`` also runs one step and one head-only pass of each variant under
``torch.profiler`` and writes ``DIR/heads-profile-<device>.json`` (operator calls, CUDA
kernels, bytes allocated, the GEMMs that reduce over many voxels into a small output, the top
operators and kernels) with one table per variant beside it: counts and bytes that a loaded
machine does not disturb. ``--compare-unsplit`` adds ``<head>/unsplit`` variants that run
the attention heads with ``multitask_unet.heads.attention_ops.VOXEL_CHUNK = 0`` (each voxel
reduction one batched GEMM, the former path), for an A/B on one machine in one run.
``--autocast bf16`` runs the steps under bfloat16 autocast, as the ``Trainer`` does on a GPU.

Usage::

    PYTHONPATH=src python benchmarks/bench_heads.py --preset nnunet_3d_fullres \\
        --size 32 64 64 --batch 1 --reps 5 --threads 1 --out benchmarks/results/heads_cpu.json
    python -m benchmarks.bench_heads --device cuda --size 128 128 128 --batch 2 \\
        --compare-unsplit --profile "$OUT" --out benchmarks/results/heads-cuda.json

Not part of the test run. Results carry device, dtype, thread count and versions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import multitask_unet as mtu
from benchmarks.head_profile import profile_variants
from multitask_unet.heads import HEADS, attention_ops
from multitask_unet.provenance import device_name

DEFAULT_VARIANTS: dict[str, tuple[str, dict[str, Any]] | None] = {
    "seg_only": None,
    **{name: (name, {}) for name in HEADS.list()},
    "attention_query": ("attention", {"mode": "query", "num_heads": 4}),
}
UNSPLIT = ("attention", "attention_query")
"""Variants that ``--compare-unsplit`` repeats as ``<name>/unsplit`` (``VOXEL_CHUNK = 0``)."""


def variants(only: list[str] | None, compare_unsplit: bool) -> dict[str, Any]:
    """The variants to run, ``seg_only`` first (every ratio is taken against it)."""
    chosen = dict(DEFAULT_VARIANTS)
    if compare_unsplit:
        chosen |= {f"{k}/unsplit": DEFAULT_VARIANTS[k] for k in UNSPLIT}
    if only:
        unknown = sorted(set(only) - set(chosen))
        if unknown:
            raise SystemExit(f"unknown variant(s) {unknown}; choose from {sorted(chosen)}")
        keep = {"seg_only", *only}  # a variant brings its /unsplit twin along
        chosen = {k: v for k, v in chosen.items() if k.split("/")[0] in keep or k in keep}
    return chosen


@contextlib.contextmanager
def voxel_chunk(key: str) -> Iterator[None]:
    """Run ``<name>/unsplit`` variants with ``VOXEL_CHUNK = 0``, every other one as is."""
    saved = getattr(attention_ops, "VOXEL_CHUNK", 0)
    if key.endswith("/unsplit"):
        attention_ops.VOXEL_CHUNK = 0
    try:
        yield
    finally:
        attention_ops.VOXEL_CHUNK = saved


def _step(
    model: mtu.MultiTaskUNet,
    x: torch.Tensor,
    seg_target: torch.Tensor,
    cls_target: torch.Tensor,
    autocast: torch.dtype | None = None,
) -> None:
    model.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=autocast or torch.float32, enabled=bool(autocast)):
        out = model(x)
        loss = F.cross_entropy(out["seg"], seg_target)
        for deep in out.get("seg_deep", []):
            loss = loss + F.cross_entropy(deep, _resize_labels(seg_target, deep.shape[2:]))
        for name, head in model.heads.items():
            logits = out[name]
            if head.loss_kind == "bce_ovr":
                onehot = F.one_hot(cls_target, head.num_classes).to(logits.dtype)
                loss = loss + 0.3 * F.binary_cross_entropy_with_logits(logits, onehot)
            else:
                loss = loss + 0.3 * F.cross_entropy(logits, cls_target)
    loss.backward()


def head_pass(
    model: mtu.MultiTaskUNet, x: torch.Tensor, cls_target: torch.Tensor
) -> Callable[[], None]:
    """The heads' own forward + backward on precomputed features (no-op without a head)."""
    if not len(model.heads):
        return lambda: None
    with torch.no_grad():
        f = model.features(x)
    f = mtu.Features(
        [t.clone().requires_grad_() for t in f.encoder],
        [t.clone().requires_grad_() for t in f.decoder],
    )

    def run() -> None:
        for head in model.heads.values():
            logits = head(f)
            if head.loss_kind == "bce_ovr":
                onehot = F.one_hot(cls_target, head.num_classes).to(logits.dtype)
                F.binary_cross_entropy_with_logits(logits, onehot).backward()
            else:
                F.cross_entropy(logits, cls_target).backward()

    return run


def _resize_labels(labels: torch.Tensor, size: torch.Size) -> torch.Tensor:
    return F.interpolate(labels[:, None].float(), size=tuple(size), mode="nearest")[:, 0].long()


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), torch.float32
    autocast = torch.bfloat16 if args.autocast == "bf16" else None
    models: dict[str, mtu.MultiTaskUNet] = {}
    for key, spec in variants(args.only, args.compare_unsplit).items():
        torch.manual_seed(0)
        heads = {} if spec is None else {"cls": (spec[0], {"num_classes": 3, **spec[1]})}
        models[key] = mtu.create_model(args.preset, heads=heads).to(device).train()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 1, *args.size, generator=g).to(device)
    seg_target = torch.randint(0, 3, (args.batch, *args.size), generator=g).to(device)
    cls_target = torch.randint(0, 3, (args.batch,), generator=g).to(device)

    use_cpu_clock = args.clock == "cpu" and device.type == "cpu"

    def timed(fn: Callable[[], None]) -> tuple[float, float]:
        """(clock seconds, wall seconds) of one call."""
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
        return (time.process_time() - start_cpu if use_cpu_clock else elapsed), elapsed

    def step(key: str) -> Callable[[], None]:
        def call() -> None:
            with voxel_chunk(key):
                _step(models[key], x, seg_target, cls_target, autocast)

        return call

    keys = list(models)
    for key in keys:
        for _ in range(args.warmup):
            timed(step(key))
    times: dict[str, list[float]] = {k: [] for k in keys}
    wall: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(args.reps):
        order = keys[r % len(keys) :] + keys[: r % len(keys)]
        for key in order:
            clock, elapsed = timed(step(key))
            times[key].append(clock)
            wall[key].append(elapsed)
        print(f"round {r + 1}/{args.reps}: " + ", ".join(f"{k} {times[k][-1]:.3f}s" for k in keys))
    base = times["seg_only"]
    results = {}
    for key in keys:
        ratios = [t / b for t, b in zip(times[key], base)]
        with voxel_chunk(key):
            head_run = head_pass(models[key], x, cls_target)
            head_run()  # warm-up
            head_only = statistics.median(timed(head_run)[0] for _ in range(args.reps * 3))
        results[key] = {
            "seconds": times[key],
            "wall_seconds": wall[key],
            "median_seconds": statistics.median(times[key]),
            "ratio_per_round": ratios,
            "median_ratio": statistics.median(ratios),
            "ratio_of_medians": statistics.median(times[key]) / statistics.median(base),
            "head_only_seconds": head_only,
            "estimated_ratio": 1.0 + head_only / statistics.median(base),
            "head_parameters": sum(p.numel() for p in models[key].heads.parameters()),
        }
    target = 1.05 if device.type == "cuda" else 1.03
    report = {
        "benchmark": "classification head cost: forward+backward with head / segmentation only",
        "preset": args.preset,
        "input_shape": [args.batch, 1, *args.size],
        "reps": args.reps,
        "warmup": args.warmup,
        "target_ratio": target,
        "all_within_target": all(
            r["median_ratio"] <= target for k, r in results.items() if "/" not in k
        ),
        "clock": "process CPU time" if use_cpu_clock else "wall",
        "device": str(device),
        "device_name": device_name(device),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "dtype": str(dtype) if autocast is None else f"{dtype} with {autocast} autocast",
        "voxel_chunk": getattr(attention_ops, "VOXEL_CHUNK", None),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "multitask_unet": mtu.__version__,
        "results": results,
    }
    for key, r in results.items():
        print(
            f"{key:>24}: median {r['median_seconds']:.3f}s  ratio {r['median_ratio']:.4f}  "
            f"estimated {r['estimated_ratio']:.4f}"
        )
    _write_atomic(args.out, json.dumps(report, indent=2) + "\n")  # before the profile, which
    print(f"wrote {args.out}")  # a time-out may cut short
    if args.profile:
        profiled = [k for k in keys if not args.profile_variants or k in args.profile_variants]
        path = profile_variants(
            {k: step(k) for k in profiled},
            lambda k: (
                _with_chunk(k, head_pass(models[k], x, cls_target)) if k != "seg_only" else None
            ),
            device=device,
            out_dir=args.profile,
            extra={
                "input_shape": [args.batch, 1, *args.size],
                "preset": args.preset,
                "autocast": args.autocast,
                "voxel_chunk": report["voxel_chunk"],
            },
        )
        print(f"wrote {path}")
    return report


def _with_chunk(key: str, fn: Callable[[], None]) -> Callable[[], None]:
    def call() -> None:
        with voxel_chunk(key):
            fn()

    return call


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.bench_heads``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="nnunet_3d_fullres")
    parser.add_argument("--size", type=int, nargs="+", default=[32, 64, 64])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="CPU only")
    parser.add_argument("--only", nargs="+", help="variants besides seg_only (default: all)")
    parser.add_argument("--compare-unsplit", action="store_true",
                        help="also run attention variants with VOXEL_CHUNK = 0")  # fmt: skip
    parser.add_argument("--voxel-chunk", type=int, help="VOXEL_CHUNK of the split variants")
    parser.add_argument("--autocast", choices=("off", "bf16"), default="off")
    parser.add_argument("--profile", type=Path, help="folder for the torch.profiler summary")
    parser.add_argument("--profile-variants", nargs="+", help="variants to profile (default: all)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/heads_cpu.json"))
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """:func:`build_parser`'s arguments, with the variant names checked before any model."""
    parser = build_parser()
    args = parser.parse_args(argv)
    chosen = variants(args.only, args.compare_unsplit)  # exits on an unknown --only name
    unknown = sorted(set(args.profile_variants or ()) - set(chosen))
    if unknown:  # they would be left out of the profile without a word
        parser.error(f"--profile-variants {unknown} are not run; choose from {sorted(chosen)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.voxel_chunk is not None:
        attention_ops.VOXEL_CHUNK = args.voxel_chunk
    run(args)


if __name__ == "__main__":
    main()
