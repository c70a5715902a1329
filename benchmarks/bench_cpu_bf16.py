"""bfloat16 autocast on the CPU: its speed, oneDNN's non-finite gradients, and the library's fix.

Three measurements on the CPU:

* **Speed**: training steps of ``small_residual`` with the PANDA head (the pancreas budget
  example's network) at patch 32x48x64, batch 2, Dice+CE with deep supervision, AdamW,
  interleaved, in float32, under plain ``torch.autocast`` bfloat16, and under the library's
  :func:`multitask_unet.training.precision.autocast` (bfloat16, with 3D convolutions of
  2-voxel-deep inputs in float32); the ratios are float32 time / bfloat16 time.
* **Correctness**: a 128 -> 128 channel 3x3x3 convolution on a 2x3x4 input (the deepest stage of
  that network at that patch), forward and backward, in ``--trials`` fresh draws per variant;
  the count of draws whose gradients hold NaN or inf. float32 is the control.
* **Which shapes**: the same count under plain bfloat16 autocast for input depths 1 to 8, a
  32-channel convolution of stride 1 on a ``depth x 6 x 8`` input.

The result file (``benchmarks/results/cpu_bf16-<device>.json``, rendered in
``docs/concepts/training.md``) records the machine, each variant's step times, the speed-ups and
the counts. Whether plain bfloat16 gives non-finite gradients depends on the allocator's state
(what freed memory holds), so a run may count none at a depth where the defect exists; the
library's test provokes it by leaving NaN in freed memory.

    python -m benchmarks.bench_cpu_bf16 --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from typing import Any

import torch

from benchmarks.common import environment, interleaved_times, save, summary
from multitask_unet.training.builders import build_loss, build_model_config
from multitask_unet.training.config import ModelSpec, OptimizerConfig, TrainConfig
from multitask_unet.training.precision import autocast, cpu_has_native_bf16
from multitask_unet.training.schedule import build_optimizer

PATCH = (32, 48, 64)
BATCH = 2
DEEP_STAGE = (2, 128, 2, 3, 4)  # (batch, channels, D, H, W) of small_residual's last stage
CPU = torch.device("cpu")


def _plain_bf16() -> Any:
    return torch.autocast("cpu", dtype=torch.bfloat16)


#: The precision variants: a context-manager factory each.
VARIANTS: dict[str, Callable[[], Any]] = {
    "float32": contextlib.nullcontext,
    "bf16_plain": _plain_bf16,
    "bf16_library": lambda: autocast(torch.bfloat16, CPU),
}


def training_step(variant: str) -> Callable[[], None]:
    """One step of the pancreas budget network under the precision ``variant``."""
    from multitask_unet.models import MultiTaskUNet

    torch.manual_seed(0)
    spec = ModelSpec(preset="small_residual", head="panda")
    model = MultiTaskUNet(build_model_config(spec, in_channels=1, seg_classes=3, case_classes=3))
    loss_fn = build_loss(TrainConfig(model=spec), model)
    optimizer = build_optimizer(model.parameters(), OptimizerConfig(name="adamw", lr=3e-3))
    image = torch.randn(BATCH, 1, *PATCH)
    seg = torch.randint(0, 3, (BATCH, 1, *PATCH))
    targets = {k: seg if k == "seg" else torch.randint(0, 3, (BATCH,)) for k in loss_fn.losses}

    def step() -> None:
        with VARIANTS[variant]():
            out = loss_fn(model(image), targets)
        optimizer.zero_grad(set_to_none=True)
        out.total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 12.0)
        optimizer.step()

    return step


def nonfinite_conv_grads(variant: str, trials: int, shape: tuple[int, ...] = DEEP_STAGE) -> int:
    """Draws (of ``trials``) whose 3x3x3 convolution gradients on ``shape`` hold NaN or inf."""
    torch.manual_seed(0)
    bad = 0
    for _ in range(trials):
        conv = torch.nn.Conv3d(shape[1], shape[1], 3, padding=1)
        x = torch.randn(shape, requires_grad=True)
        with VARIANTS[variant]():
            y = conv(x)
        y.backward(torch.randn_like(y))
        grads = (conv.weight.grad, conv.bias.grad, x.grad)
        bad += not all(bool(torch.isfinite(g).all()) for g in grads if g is not None)
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per variant")
    parser.add_argument("--trials", type=int, default=100, help="convolution draws per variant")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    times = interleaved_times(
        {name: training_step(name) for name in VARIANTS}, device="cpu", repeats=args.repeats
    )
    speed = {k: summary(v) for k, v in times.items()}
    float32 = speed["float32"]["median_s"]
    ratios = {f"speedup_{k}": float32 / speed[k]["median_s"] for k in VARIANTS if k != "float32"}
    bad = {name: nonfinite_conv_grads(name, args.trials) for name in VARIANTS}
    by_depth = {
        str(depth): nonfinite_conv_grads("bf16_plain", args.trials // 2, (2, 32, depth, 6, 8))
        for depth in range(1, 9)
    }
    result = {
        "benchmark": "cpu_bf16",
        "environment": environment("cpu", "float32 vs bfloat16 autocast"),
        "native_bf16": cpu_has_native_bf16(),
        "train_step": {"patch": PATCH, "batch": BATCH, **speed, **ratios},
        "deep_stage_conv": {"shape": DEEP_STAGE, "trials": args.trials, "nonfinite": bad},
        "bf16_plain_nonfinite_by_input_depth": {
            "shape": "2 x 32 x depth x 6 x 8, stride 1",
            "trials": args.trials // 2,
            **by_depth,
        },
    }
    path = save("cpu_bf16", result)
    print(
        f"step float32 {float32:.3f} s; "
        + ", ".join(f"{k} {speed[k]['median_s']:.3f} s" for k in VARIANTS if k != "float32")
        + f" ({', '.join(f'{k} {v:.2f}x' for k, v in ratios.items())}); non-finite conv "
        f"gradients in {args.trials} draws: {bad}; plain bf16 by input depth: {by_depth}; {path}"
    )


if __name__ == "__main__":
    main()
