"""Sliding-window prediction: our ``sliding_window_predict`` vs nnU-Net's ``nnUNetPredictor``.

Both run the same network and weights (dynamic-network-architectures' network, loaded into ours
with ``load_nnunet_weights``) on the same volume with the same overlap, Gaussian and mirroring
(all three axes, 8 passes per window). nnU-Net's predictor is set up by hand (network,
``patch_size``, ``num_segmentation_heads``, mirroring axes) and runs as it ships: one window and
one mirrored copy per network call, logits accumulated in float16, and on CUDA the network under
float16 autocast (``torch.autocast("cuda")`` is hard-coded in ``predict_sliding_window_return_
logits``) and with everything on the device.

What is timed, per case, for both: the preprocessed volume as a CPU tensor in, the padded,
blended logits as a CPU tensor out (nnU-Net: ``predict_sliding_window_return_logits(volume)
.float().cpu()``, as its ``predict_logits_from_preprocessed_data`` does per fold; ours:
``sliding_window_predict`` with the :class:`~multitask_unet.inference.Predictor`'s default
``output_device``, the model's device, then ``.cpu()``). Neither includes preprocessing or the
export (resampling to the image's grid, softmax, argmax), which
``tests/inference/test_nnunet_export_parity.py`` compares. ``--output-device cpu`` accumulates
ours on the CPU instead (what this benchmark timed before 2026-12-05).

Our variants (``--variants``):

- ``fp32_b1``: one window and one mirrored copy per call, float32 (the Predictor's GPU default);
- ``fp32``: the mirrored copies of ``--batch`` / 8 windows in one network call;
- ``bf16`` / ``fp16``: that, under autocast (``fp16`` on CUDA is nnU-Net's own arithmetic).
  Accumulation and classification pooling stay float32.

Reported per variant: median time and its ratio to nnU-Net's; the Dice between its label map
(argmax of the logits) and nnU-Net's (mean over the foreground classes) and the largest logit
difference, against stock nnU-Net and against untimed runs of nnU-Net's own code with float32
sums (``nnunet_fp32_sums``: nnU-Net's float16 Gaussian weights underflow near the volume's
corners, see ``tests/inference/test_nnunet_parity.py``) and, on CUDA, with float32 sums and no
autocast (``nnunet_float32``: the float32 reference; on the CPU nnU-Net never autocasts, so it
is the same run); for the reduced-precision variants also the Dice against our float32 label
map (``dice_vs_ours_fp32``). With ``--profile``, ``ops`` counts from one untimed
``torch.profiler`` run of each what happens outside the network, which load on the machine
does not change (:func:`benchmarks.op_counts.count_ops`): top-level operator calls,
host-device synchronisations, allocations of at least one window channel and the largest
allocations. The volume is a real CT crop when ``MULTITASK_UNET_TEST_DATA`` is set
(z-scored), otherwise smoothed noise; the weights are random (He init), so labels are what an
untrained network says, which makes the Dice a strict test (many near ties).

    python -m benchmarks.bench_predict --device cpu --repeats 3 --clock process --profile
    python -m benchmarks.bench_predict --device cuda --arch nnunet_3d_fullres_plain \\
        --patch 64 128 128 --shape 128 256 256 --variants fp32 fp32_b1 bf16 fp16 --profile

Results: ``results/predict-<arch>-<device>.json`` (rendered on the benchmarks page).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from benchmarks.bench_network import ARCHS as NETWORK_ARCHS
from benchmarks.bench_network import build_dna
from benchmarks.common import environment, interleaved_times, save, summary, sync
from benchmarks.op_counts import count_ops

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
CLOCKS = {"wall": time.perf_counter, "process": time.process_time}


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
def float32_accumulation(autocast: bool = True) -> Iterator[None]:
    """Run nnU-Net's predictor with float32 instead of float16 logit/weight sums (reference);
    ``autocast=False`` also runs its network without its hard-coded CUDA autocast."""
    import nnunetv2.inference.predict_from_raw_data as pfr

    half, gaussian, cast = torch.half, pfr.compute_gaussian, torch.autocast
    torch.half = torch.float32  # the dtype of its accumulation buffers
    pfr.compute_gaussian = functools.partial(gaussian.__wrapped__, dtype=torch.float32)
    if not autocast:
        torch.autocast = lambda *args, **kwargs: contextlib.nullcontext()  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.half, pfr.compute_gaussian, torch.autocast = half, gaussian, cast


def dice(a: torch.Tensor, b: torch.Tensor, classes: int = 3) -> float:
    """Mean Dice over the foreground classes present in either map (1.0 when none is)."""
    scores = []
    for c in range(1, classes):
        x, y = a == c, b == c
        total = int(x.sum() + y.sum())
        if total:
            scores.append(2 * int((x & y).sum()) / total)
    return float(np.mean(scores)) if scores else 1.0


def shared_note(note: str | None, clock: str) -> str | None:
    """Why the CPUs were not this benchmark's alone (``--note``, or a load average above half
    the CPUs at the start), and which clock was used."""
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if not note and load > cpus / 2:
        note = "other programs were running"
    if not note:
        return None
    return f"{note}; 1-minute load average {load:.1f} on {cpus} CPUs at the start; clock {clock}"


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.bench_predict``."""
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
    parser.add_argument("--clock", default="wall", choices=sorted(CLOCKS),
                        help="process: CPU seconds of this process, less disturbed by other "
                        "programs on a shared CPU (CPU runs only)")  # fmt: skip
    parser.add_argument(
        "--output-device",
        default=None,
        help="where ours accumulates (default: --device, the Predictor's)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also count operators (one profiled run each)"
    )
    parser.add_argument("--note", default=None, help="other programs used the CPUs: say which")
    parser.add_argument("--name", default="predict")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """:func:`build_parser`'s arguments, with the clock checked against the device."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and args.clock != "wall":
        parser.error("--clock process counts CPU seconds; on CUDA use --clock wall")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")

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
    volume, source = make_volume(tuple(args.shape))  # on the CPU, as the Predictor has it
    patch = tuple(args.patch)
    output_device = args.output_device or args.device
    predictor = nnunet_predictor(dna, patch, args)  # sets cudnn.benchmark on CUDA (as ours does)
    results: dict[str, torch.Tensor] = {}

    def run_nnunet(key: str = "nnunet") -> None:
        results[key] = predictor.predict_sliding_window_return_logits(volume).float().cpu()

    def make_ours(variant: str) -> Callable[[], None]:
        def run() -> None:
            out = sliding_window_predict(
                ours,
                volume[None],
                window_size=patch,
                overlap=args.overlap,
                mirror_axes=(0, 1, 2),
                window_batch_size=1 if variant == "fp32_b1" else args.batch,
                dtype=DTYPES[variant],
                output_device=output_device,
            )
            results[variant] = out["seg"][0].cpu()

        return run

    fns = {"nnunet": run_nnunet, **{v: make_ours(v) for v in args.variants}}
    times = interleaved_times(
        fns, device=args.device, repeats=args.repeats, clock=CLOCKS[args.clock]
    )
    sync(args.device)
    with float32_accumulation():  # untimed: nnU-Net's own code without its float16 sums
        run_nnunet("nnunet_fp32_sums")
    if cuda:  # and without its float16 autocast: the float32 reference
        with float32_accumulation(autocast=False):
            run_nnunet("nnunet_float32")
    else:  # nnU-Net autocasts on CUDA only
        results["nnunet_float32"] = results["nnunet_fp32_sums"]
    padded = [max(s, k) for s, k in zip(args.shape, patch)]
    windows = len(plan_windows(padded, patch, overlap=args.overlap))
    ops: dict[str, Any] = {}
    if args.profile:
        sizes = {"window": int(np.prod(patch)), "volume": int(np.prod(padded))}
        ops["nnunet"] = count_ops(run_nnunet, [dna], **sizes)
        modules = [ours.encoder, ours.decoder, ours.seg_head]
        ops.update({v: count_ops(make_ours(v), modules, **sizes) for v in args.variants})
        for entry in ops.values():
            entry["top_level_ops_per_window"] = entry["top_level_ops"] / windows

    labels = {k: v.argmax(0) for k, v in results.items()}
    base = summary(times["nnunet"])
    variants = {}
    for v in args.variants:
        stats = summary(times[v])
        variants[v] = {
            **stats,
            "ratio_to_nnunet": stats["median_s"] / base["median_s"],
            "dice_vs_nnunet": dice(labels[v], labels["nnunet"]),
            "dice_vs_nnunet_fp32_sums": dice(labels[v], labels["nnunet_fp32_sums"]),
            "dice_vs_nnunet_float32": dice(labels[v], labels["nnunet_float32"]),
            "dice_vs_ours_fp32": (
                dice(labels[v], labels["fp32"]) if "fp32" in labels and v != "fp32" else None
            ),
            "max_abs_logit_diff": float((results[v] - results["nnunet"]).abs().max()),
            "max_abs_logit_diff_vs_fp32_sums": float(
                (results[v] - results["nnunet_fp32_sums"]).abs().max()
            ),
            "max_abs_logit_diff_vs_float32": float(
                (results[v] - results["nnunet_float32"]).abs().max()
            ),
            "window_batch_size": 1 if v == "fp32_b1" else args.batch,
            "autocast_dtype": str(DTYPES[v]) if DTYPES[v] else None,
        }
    note = shared_note(args.note, args.clock) if not cuda else args.note
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
        "clock": args.clock,
        "timed": "CPU volume in, CPU logits out; no preprocessing, no export",
        "output_device_ours": output_device,
        "nnunet_network_autocast": "float16" if cuda else None,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32 if cuda else None,
        "machine_shared": note is not None and not cuda,
        "machine_note": note,
        "nnunet": {
            **base,
            "times_s": times["nnunet"],
            "dice_vs_fp32_sums": dice(labels["nnunet"], labels["nnunet_fp32_sums"]),
            "dice_vs_float32": dice(labels["nnunet"], labels["nnunet_float32"]),
        },
        "ours": {v: {**variants[v], "times_s": times[v]} for v in args.variants},
        "ops": ops,
        "note": (
            "nnU-Net accumulates in float16; its largest logit differences sit at the volume "
            "corners, where its Gaussian weights underflow float16 (see tests/inference/"
            "test_nnunet_parity.py)."
        ),
    }
    if cuda and "fp32" in variants:  # issue #24, point 5
        result["targets"] = {
            "fp32 time / nnU-Net <= 0.80": variants["fp32"]["ratio_to_nnunet"] <= 0.80,
            "fp32 Dice vs nnU-Net float32 >= 0.999": (
                variants["fp32"]["dice_vs_nnunet_float32"] >= 0.999
            ),
        }
    result["environment"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    path = save(f"{args.name}-{args.arch}", result)
    print(f"{windows} windows x 8 mirrors; nnU-Net median {base['median_s']:.2f} s ({args.clock})")
    for v, r in variants.items():
        print(
            f"{v:>8}: median {r['median_s']:.2f} s, ratio {r['ratio_to_nnunet']:.3f}x, "
            f"Dice vs nnU-Net {r['dice_vs_nnunet']:.5f}, fp32 sums "
            f"{r['dice_vs_nnunet_fp32_sums']:.5f}, float32 {r['dice_vs_nnunet_float32']:.5f}, "
            f"ours fp32 {r['dice_vs_ours_fp32']}; max |dlogit| vs float32 "
            f"{r['max_abs_logit_diff_vs_float32']:.2e}"
        )
    keys = ("top_level_ops_per_window", "host_syncs", "window_allocations", "allocated_mib")
    for name, entry in ops.items():
        counts = ", ".join(f"{k} {entry[k]:.4g}" for k in keys)
        print(f"ops {name:>8}: {counts}; largest {entry['largest_allocations']}")
    print(f"saved {path}")


if __name__ == "__main__":
    main()
