"""Sliding-window prediction: our ``sliding_window_predict`` vs nnU-Net's ``nnUNetPredictor``.

Both run the same network and weights (dynamic-network-architectures' network, loaded into ours
with ``load_nnunet_weights``) on the same volume with the same overlap, Gaussian and mirroring
(all three axes, 8 passes per window). nnU-Net's predictor is set up by hand (network,
``patch_size``, ``num_segmentation_heads``, mirroring axes) and runs as it ships: one window and
one mirrored copy per network call, logits accumulated in float16, autocast on CUDA only.

Our variants (``--variants``):

- ``fp32_b1``: the same arithmetic as nnU-Net (one window per call, float32);
- ``fp32``: the mirrored copies of ``--batch`` / 8 windows in one network call;
- ``bf16`` / ``fp16``: that, under autocast (bfloat16 on CPUs with AVX512-BF16 or AMX, float16
  on CUDA). Accumulation and classification pooling stay float32.

Reported per variant: median time and its ratio to nnU-Net's, the Dice between its label map
(argmax of the logits) and nnU-Net's (mean over the foreground classes), and the largest logit
difference; both also against an untimed run of nnU-Net's code with float32 instead of float16
sums, since nnU-Net's float16 Gaussian weights underflow near the volume's corners and round
its logits there to whole numbers (see ``tests/inference/test_nnunet_parity.py``). The volume is a real CT crop when ``MULTITASK_UNET_TEST_DATA`` is set (z-scored),
otherwise smoothed noise; the weights are random (He init), so labels are what an untrained
network says, which makes the Dice a strict test (many near ties).

    python -m benchmarks.bench_predict --device cpu --repeats 3

Result on the 2-core CPU box (shared with other jobs; 3 interleaved repeats; small_plain,
volume 24 x 72 x 72, patch 16 x 48 x 48, 8 windows x 8 mirrors), ``results/predict-small_plain-
cpu.json``: nnU-Net 72 s; ours float32 (8 copies per call) 34 s = 0.47x, Dice 0.996 against
stock nnU-Net and 1.00000 against its float32-sum run (max logit difference 7e-6); bfloat16
15 s = 0.21x, Dice 0.990 / 0.994. Nearly all of the float32 gain is the batching: on this CPU a
batch of 8 windows costs about as much as 2 to 3 single-window calls. A second run
(``results/predict-tiny_plain-cpu.json``: tiny_plain, 24 x 80 x 80, patch 16 x 32 x 32, 32
windows, 1 repeat): nnU-Net 154 s; float32 31 s = 0.20x, Dice 0.9988 / 1.00000; bfloat16 0.20x
(no gain at 8-64 channels).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from benchmarks.bench_network import ARCHS as NETWORK_ARCHS
from benchmarks.bench_network import build_dna
from benchmarks.common import environment, interleaved_times, save, summary, sync

SMALL = copy.deepcopy(NETWORK_ARCHS["nnunet_3d_fullres_plain"])
SMALL["arch_kwargs"].update(
    n_stages=5,
    features_per_stage=[16, 32, 64, 128, 128],
    kernel_sizes=[[3, 3, 3]] * 5,
    strides=[[1, 1, 1]] + [[2, 2, 2]] * 4,
    n_conv_per_stage=[2] * 5,
    n_conv_per_stage_decoder=[2] * 4,
)
TINY = copy.deepcopy(SMALL)
TINY["arch_kwargs"].update(
    n_stages=4,
    features_per_stage=[8, 16, 32, 64],
    kernel_sizes=[[3, 3, 3]] * 4,
    strides=[[1, 1, 1]] + [[2, 2, 2]] * 3,
    n_conv_per_stage=[2] * 4,
    n_conv_per_stage_decoder=[2] * 3,
)
ARCHS: dict[str, dict[str, Any]] = {"small_plain": SMALL, "tiny_plain": TINY, **NETWORK_ARCHS}
DTYPES = {"fp32": None, "fp32_b1": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def make_volume(shape: tuple[int, int, int], seed: int = 0) -> tuple[torch.Tensor, str]:
    """``(1, D, H, W)`` float32: a z-scored real CT crop if available, else smoothed noise."""
    root = os.environ.get("MULTITASK_UNET_TEST_DATA")
    path = Path(root or "-") / "pancreas_quiz_subset" / "test" / "quiz_146_0000.nii.gz"
    if root and path.is_file():
        from multitask_unet.data.io import read_image

        array = np.asarray(read_image(path).array, dtype=np.float32).transpose(2, 1, 0)
        array = np.clip(array, -100, 240)
        out = np.full(shape, float(array.min()), dtype=np.float32)
        src = tuple(
            slice(max((a - s) // 2, 0), max((a - s) // 2, 0) + s)
            for a, s in zip(array.shape, shape)
        )
        crop = array[src]
        out[tuple(slice(0, c) for c in crop.shape)] = crop
        source = f"{path.name} crop"
    else:
        from scipy.ndimage import gaussian_filter

        out = gaussian_filter(np.random.default_rng(seed).normal(size=shape), 2).astype(np.float32)
        source = "smoothed noise"
    out = (out - out.mean()) / max(float(out.std()), 1e-6)
    return torch.from_numpy(out)[None], source


def nnunet_predictor(network: torch.nn.Module, patch: tuple[int, ...], args: argparse.Namespace):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    predictor = nnUNetPredictor(
        tile_step_size=1 - args.overlap,
        use_gaussian=True,
        use_mirroring=True,
        perform_everything_on_device=args.device.startswith("cuda"),
        device=torch.device(args.device),
        verbose=False,
        allow_tqdm=False,
    )
    predictor.network = network
    predictor.configuration_manager = SimpleNamespace(patch_size=list(patch))
    predictor.label_manager = SimpleNamespace(num_segmentation_heads=3)
    predictor.allowed_mirroring_axes = (0, 1, 2)
    return predictor


@contextlib.contextmanager
def float32_accumulation() -> Iterator[None]:
    """Run nnU-Net's predictor with float32 instead of float16 logit/weight sums (reference)."""
    import nnunetv2.inference.predict_from_raw_data as pfr

    half, gaussian = torch.half, pfr.compute_gaussian
    torch.half = torch.float32  # the dtype of its accumulation buffers
    pfr.compute_gaussian = functools.partial(gaussian.__wrapped__, dtype=torch.float32)
    try:
        yield
    finally:
        torch.half, pfr.compute_gaussian = half, gaussian


def dice(a: torch.Tensor, b: torch.Tensor, classes: int = 3) -> float:
    """Mean Dice over the foreground classes present in either map (1.0 when none is)."""
    scores = []
    for c in range(1, classes):
        x, y = a == c, b == c
        total = int(x.sum() + y.sum())
        if total:
            scores.append(2 * int((x & y).sum()) / total)
    return float(np.mean(scores)) if scores else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arch", default="small_plain", choices=sorted(ARCHS))
    parser.add_argument("--patch", type=int, nargs=3, default=(16, 48, 48))
    parser.add_argument("--shape", type=int, nargs=3, default=(24, 72, 72))
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=8, help="network batch of our variants")
    parser.add_argument("--variants", nargs="+", default=["fp32", "bf16"], choices=sorted(DTYPES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--name", default="predict")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from multitask_unet.inference import plan_windows, sliding_window_predict
    from multitask_unet.interop.nnunet import load_nnunet_weights, model_from_plans

    torch.manual_seed(0)
    arch = ARCHS[args.arch]
    dna = build_dna(arch).to(args.device).eval()
    dna.decoder.deep_supervision = False  # as nnU-Net's predictor sets it
    ours = model_from_plans(
        {"configurations": {"3d_fullres": {"architecture": arch}}}, in_channels=1, num_classes=3
    )
    load_nnunet_weights(ours, dna.state_dict())
    ours = ours.to(args.device).eval()
    volume, source = make_volume(tuple(args.shape))
    patch = tuple(args.patch)
    predictor = nnunet_predictor(dna, patch, args)
    results: dict[str, torch.Tensor] = {}

    def run_nnunet() -> None:
        results["nnunet"] = (
            predictor.predict_sliding_window_return_logits(volume.to(args.device)).float().cpu()
        )

    def make_ours(variant: str):
        def run() -> None:
            out = sliding_window_predict(
                ours,
                volume[None].to(args.device),
                window_size=patch,
                overlap=args.overlap,
                mirror_axes=(0, 1, 2),
                window_batch_size=1 if variant == "fp32_b1" else args.batch,
                dtype=DTYPES[variant],
                output_device="cpu",
            )
            results[variant] = out["seg"][0]

        return run

    fns = {"nnunet": run_nnunet, **{v: make_ours(v) for v in args.variants}}
    times = interleaved_times(fns, device=args.device, repeats=args.repeats)
    sync(args.device)
    with float32_accumulation():  # untimed: nnU-Net's own code without its float16 sums
        exact = predictor.predict_sliding_window_return_logits(volume.to(args.device)).float().cpu()
    reference = results["nnunet"].argmax(0)
    base = summary(times["nnunet"])
    variants = {}
    for v in args.variants:
        stats = summary(times[v])
        variants[v] = {
            **stats,
            "ratio_to_nnunet": stats["median_s"] / base["median_s"],
            "dice_vs_nnunet": dice(results[v].argmax(0), reference),
            "dice_vs_nnunet_fp32_sums": dice(results[v].argmax(0), exact.argmax(0)),
            "max_abs_logit_diff": float((results[v] - results["nnunet"]).abs().max()),
            "max_abs_logit_diff_vs_fp32_sums": float((results[v] - exact).abs().max()),
            "window_batch_size": 1 if v == "fp32_b1" else args.batch,
            "autocast_dtype": str(DTYPES[v]) if DTYPES[v] else None,
        }
    windows = len(
        plan_windows([max(s, k) for s, k in zip(args.shape, patch)], patch, overlap=args.overlap)
    )
    result = {
        "benchmark": "sliding_window_prediction",
        "environment": environment(args.device),
        "arch": args.arch,
        "patch": list(patch),
        "volume_shape": list(args.shape),
        "volume": source,
        "overlap": args.overlap,
        "mirror_axes": [0, 1, 2],
        "windows": windows,
        "network_calls_nnunet": windows * 8,
        "repeats_interleaved": args.repeats,
        "nnunet": {
            **base,
            "times_s": times["nnunet"],
            "dice_vs_fp32_sums": dice(reference, exact.argmax(0)),
        },
        "ours": {v: {**variants[v], "times_s": times[v]} for v in args.variants},
        "note": (
            "nnU-Net accumulates in float16; its largest logit differences sit at the volume "
            "corners, where its Gaussian weights underflow float16 (see tests/inference/"
            "test_nnunet_parity.py)."
        ),
    }
    path = save(f"{args.name}-{args.arch}", result)
    print(f"{windows} windows x 8 mirrors; nnU-Net median {base['median_s']:.2f} s")
    for v, r in variants.items():
        print(
            f"{v:>8}: median {r['median_s']:.2f} s, ratio {r['ratio_to_nnunet']:.2f}x, "
            f"Dice {r['dice_vs_nnunet']:.5f} (vs float32 sums {r['dice_vs_nnunet_fp32_sums']:.5f}), "
            f"max |dlogit| {r['max_abs_logit_diff']:.2e} ({r['max_abs_logit_diff_vs_fp32_sums']:.2e})"
        )
    print(f"saved {path}")


if __name__ == "__main__":
    main()
