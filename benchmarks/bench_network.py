"""Forward+backward time and peak memory: our network vs dynamic-network-architectures'.

Both networks are built from the same nnU-Net architecture description, ours through
``model_from_plans`` with DNA's weights loaded, and timed side by side in one process
(interleaved repetitions). Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA and the
growth of the peak resident set size of a fresh subprocess per network on CPU (noisy, a few
percent); the tensors autograd saves for backward are also counted exactly on every device.

    python -m benchmarks.bench_network --device cpu --patch 32 64 64 --repeats 5
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import time
from typing import Any

import torch

from benchmarks.common import (
    environment,
    interleaved_times,
    nnunet_architecture,
    save,
    summary,
    sync,
)

# nnU-Net's 3d_fullres networks: 6 stages of 32 to 320 channels, isotropic kernels and strides.
_STAGES: dict[str, Any] = {
    "features_per_stage": [32, 64, 128, 256, 320, 320],
    "kernel_sizes": [[3, 3, 3]] * 6,
    "strides": [[1, 1, 1]] + [[2, 2, 2]] * 5,
}
ARCHS: dict[str, dict[str, Any]] = {
    "nnunet_3d_fullres_plain": nnunet_architecture(
        "PlainConvUNet", **_STAGES, n_conv_per_stage=[2] * 6, n_conv_per_stage_decoder=[2] * 5
    ),
    "nnunet_3d_fullres_resenc_m": nnunet_architecture(
        "ResidualEncoderUNet", **_STAGES, n_blocks_per_stage=[1, 3, 4, 6, 6, 6]
    ),
}


def build_dna(arch: dict[str, Any], in_channels: int = 1, num_classes: int = 3) -> torch.nn.Module:
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    return get_network_from_plans(
        arch["network_class_name"],
        copy.deepcopy(arch["arch_kwargs"]),
        arch["_kw_requires_import"],
        in_channels,
        num_classes,
        deep_supervision=True,
    ).train()


def build_ours(arch: dict[str, Any], in_channels: int = 1, num_classes: int = 3) -> torch.nn.Module:
    from multitask_unet.interop.nnunet import model_from_plans

    plans = {"configurations": {"3d_fullres": {"architecture": arch}}}
    return model_from_plans(plans, in_channels=in_channels, num_classes=num_classes).train()


def build_pair(arch: dict[str, Any]) -> tuple[torch.nn.Module, torch.nn.Module]:
    """DNA's network and ours with identical weights, both in training mode."""
    from multitask_unet.interop.nnunet import load_nnunet_weights

    dna, ours = build_dna(arch), build_ours(arch)
    load_nnunet_weights(ours, dna.state_dict())
    return dna, ours


def step(model: torch.nn.Module, x: torch.Tensor, ours: bool) -> None:
    out = model(x)
    logits = [out["seg"], *out["seg_deep"]] if ours else out
    sum(t.float().square().mean() for t in logits).backward()
    model.zero_grad(set_to_none=True)


def saved_activation_mib(model: torch.nn.Module, x: torch.Tensor, ours: bool) -> float:
    """MiB of distinct tensors autograd keeps for backward in one forward (deterministic)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    del out
    return sum(n for ptr, n in seen.items() if ptr not in params) / 2**20


def _child_peak(args: argparse.Namespace) -> None:
    """Subprocess: one network, a few steps, print peak RSS growth in MiB."""
    torch.set_num_threads(args.threads)
    build = build_ours if args.child == "ours" else build_dna
    model = build(ARCHS[args.arch])
    x = torch.randn(args.batch, 1, *args.patch)
    before = _high_water_mib()
    for _ in range(2):
        step(model, x, args.child == "ours")
    print(json.dumps({"peak_rss_growth_mib": _high_water_mib() - before}))


def _high_water_mib() -> float:
    """Peak resident set of this process (VmHWM; unlike ru_maxrss it restarts at exec)."""
    with open("/proc/self/status") as status:
        lines = status.read().splitlines()
    for line in lines:
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_peaks(args: argparse.Namespace) -> dict[str, float]:
    peaks = {}
    for who in ("dna", "ours"):
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.bench_network",
            "--child",
            who,
            "--arch",
            args.arch,
        ]
        cmd += ["--patch", *map(str, args.patch), "--batch", str(args.batch)]
        cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        peaks[who] = json.loads(out.strip().splitlines()[-1])["peak_rss_growth_mib"]
    return peaks


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    device = args.device
    dna, ours = build_pair(ARCHS[args.arch])
    dna, ours = dna.to(device), ours.to(device)
    x = torch.randn(args.batch, 1, *args.patch, device=device)
    times = interleaved_times(
        {"dna": lambda: step(dna, x, False), "ours": lambda: step(ours, x, True)},
        device=device,
        repeats=args.repeats,
        clock=time.process_time if args.clock == "cpu" else time.perf_counter,
    )
    result: dict[str, Any] = {
        "benchmark": "network_forward_backward",
        "environment": environment(device),
        "arch": args.arch,
        "patch": list(args.patch),
        "batch": args.batch,
        "clock": "process CPU time" if args.clock == "cpu" else "wall time",
        "dna": summary(times["dna"]),
        "ours": summary(times["ours"]),
    }
    result["time_ratio"] = result["ours"]["median_s"] / result["dna"]["median_s"]
    result["saved_activations_mib"] = {
        "dna": saved_activation_mib(dna, x, False),
        "ours": saved_activation_mib(ours, x, True),
    }
    if device.startswith("cuda"):
        peaks = {}
        for name, model, is_ours in (("dna", dna, False), ("ours", ours, True)):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            step(model, x, is_ours)
            sync(device)
            peaks[name] = torch.cuda.max_memory_allocated() / 2**20
        result["peak_memory_mib"] = {**peaks, "kind": "cuda max_memory_allocated"}
    else:
        del dna, ours
        peaks = _cpu_peaks(args)
        result["peak_memory_mib"] = {**peaks, "kind": "peak RSS growth of a fresh process"}
    result["memory_ratio"] = result["peak_memory_mib"]["ours"] / result["peak_memory_mib"]["dna"]
    acts = result["saved_activations_mib"]
    result["saved_activations_ratio"] = acts["ours"] / acts["dna"]
    return result


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.bench_network``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arch", default="nnunet_3d_fullres_plain", choices=sorted(ARCHS))
    parser.add_argument("--patch", type=int, nargs=3, default=(32, 64, 64))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: process CPU seconds, steadier on a shared CPU machine (CPU only)",
    )
    parser.add_argument("--child", choices=("dna", "ours"), help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = build_parser().parse_args(argv)
    if args.child:
        _child_peak(args)
        return None
    result = run(args)
    path = save(f"network-{args.arch}", result)
    print(json.dumps(result, indent=2))
    print(
        f"time ours/DNA = {result['time_ratio']:.3f}   "
        f"peak memory ours/DNA = {result['memory_ratio']:.3f}   "
        f"saved activations ours/DNA = {result['saved_activations_ratio']:.3f}   -> {path}"
    )
    return result


if __name__ == "__main__":
    main()
