"""Why the CPU trains in float32: bfloat16 autocast's speed and its non-finite gradients.

Two measurements on the CPU, bfloat16 autocast against float32:

* **Speed**: training steps of ``small_residual`` with the PANDA head (the pancreas budget
  example's network) at patch 32x48x64, batch 2, Dice+CE with deep supervision, AdamW,
  interleaved; the ratio is float32 time / bfloat16 time.
* **Correctness**: a 128 -> 128 channel 3x3x3 convolution on a 2x3x4 input (the deepest stage
  of that network at that patch), forward under autocast and backward, in ``--trials`` fresh
  draws; the count of draws whose gradients hold NaN or inf. float32 is the control.

On the 2-core AMD EPYC development box (AVX512-BF16, torch 2.14.1) bfloat16 steps were 1.67x
faster (4 Dec 2026), but oneDNN's bfloat16 gradients were non-finite in 38 of 100 draws
(float32: none), and a 5-minute
training run of the pancreas example turned NaN in its third epoch; hence
:func:`multitask_unet.training.precision.autocast_dtype` refuses ``amp="bf16"`` on the CPU.

    python -m benchmarks.bench_cpu_bf16 --threads 2
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from benchmarks.common import environment, interleaved_times, save, summary
from multitask_unet.training.builders import build_loss, build_model_config
from multitask_unet.training.config import ModelSpec, OptimizerConfig, TrainConfig
from multitask_unet.training.schedule import build_optimizer

PATCH = (32, 48, 64)
BATCH = 2
DEEP_STAGE = (2, 128, 2, 3, 4)  # (batch, channels, D, H, W) of small_residual's last stage


def training_step(bf16: bool) -> Any:
    """One step of the pancreas budget network, in float32 or under bfloat16 autocast."""
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
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = loss_fn(model(image), targets)
        optimizer.zero_grad(set_to_none=True)
        out.total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 12.0)
        optimizer.step()

    return step


def nonfinite_conv_grads(bf16: bool, trials: int) -> int:
    """Draws (of ``trials``) whose conv gradients hold NaN or inf."""
    torch.manual_seed(0)
    bad = 0
    for _ in range(trials):
        conv = torch.nn.Conv3d(DEEP_STAGE[1], DEEP_STAGE[1], 3, padding=1)
        x = torch.randn(DEEP_STAGE, requires_grad=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = conv(x)
        y.backward(torch.randn_like(y))
        grads = (conv.weight.grad, conv.bias.grad, x.grad)
        bad += not all(bool(torch.isfinite(g).all()) for g in grads if g is not None)
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per variant")
    parser.add_argument("--trials", type=int, default=100, help="convolution draws per dtype")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    times = interleaved_times(
        {"float32": training_step(False), "bf16": training_step(True)},
        device="cpu",
        repeats=args.repeats,
    )
    speed = {k: summary(v) for k, v in times.items()}
    ratio = speed["float32"]["median_s"] / speed["bf16"]["median_s"]
    bad = {name: nonfinite_conv_grads(bf16, args.trials) for name, bf16 in
           (("float32", False), ("bf16", True))}  # fmt: skip
    from multitask_unet.training.precision import cpu_has_native_bf16

    result = {
        "benchmark": "cpu_bf16",
        "environment": environment("cpu", "float32 vs bfloat16 autocast"),
        "native_bf16": cpu_has_native_bf16(),
        "train_step": {"patch": PATCH, "batch": BATCH, **speed, "speedup_bf16": ratio},
        "deep_stage_conv": {"shape": DEEP_STAGE, "trials": args.trials, "nonfinite": bad},
    }
    path = save("cpu_bf16", result)
    print(f"step float32 {speed['float32']['median_s']:.3f} s, bf16 {speed['bf16']['median_s']:.3f}"
          f" s ({ratio:.2f}x); non-finite conv gradients in {args.trials} draws: {bad}; {path}")  # fmt: skip


if __name__ == "__main__":
    main()
