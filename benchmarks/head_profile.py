"""``torch.profiler`` summaries of training-step variants: counts and bytes, not times.

Operator calls, CUDA kernel launches and bytes allocated do not depend on how loaded the
machine is, so they compare variants on a shared CPU where wall and CPU times are noisy, and
they say what a GPU will have to run before one is at hand. ``long_reductions`` lists every
matrix product that sums over many voxels (``K >= LONG_K``) into a small output (``M * N <=
SMALL_OUTPUT`` per matrix): batched GEMM kernels are generally not split along the
reduction, so on a GPU one of that shape can keep as few as one thread block per batch entry
busy, which a CPU does not mind.

Used by ``benchmarks/bench_heads.py --profile DIR``.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

__all__ = ["LONG_K", "SMALL_OUTPUT", "long_reduction", "profile_variants", "summarise"]

LONG_K = 65536
"""Reduction length from which a matrix product counts as a long reduction."""
SMALL_OUTPUT = 4096
"""Largest output (``M * N`` per matrix) of a matrix product that counts as small."""

_GEMMS = {"aten::mm": 0, "aten::bmm": 0, "aten::addmm": 1, "aten::baddbmm": 1}
"""Matrix-product operators and the index of their first matrix operand."""


def long_reduction(name: str, shapes: list[list[int]]) -> tuple[int, int, int] | None:
    """``(M, N, K)`` of a matrix product that reduces over ``K >= LONG_K`` into a small output.

    Args:
        name: Operator name, e.g. ``"aten::bmm"``.
        shapes: The operator's input shapes as the profiler records them.
    """
    first = _GEMMS.get(name)
    if first is None or len(shapes) < first + 2:
        return None
    a, b = shapes[first], shapes[first + 1]
    if len(a) < 2 or len(b) < 2:
        return None
    m, k, n = a[-2], a[-1], b[-1]
    return (m, n, k) if k >= LONG_K and m * n <= SMALL_OUTPUT else None


def summarise(prof: Any, device: torch.device, *, top: int = 15) -> dict[str, Any]:
    """Counts, bytes and the heaviest operators (and kernels on CUDA) of one profile."""
    events = [e for e in prof.events() if e.name.startswith("aten::")]
    cuda = device.type == "cuda"
    mem = "self_device_memory_usage" if cuda else "self_cpu_memory_usage"
    long: defaultdict[str, int] = defaultdict(int)
    for e in events:
        found = long_reduction(e.name, [list(s) for s in (e.input_shapes or [])])
        if found:
            long[f"{e.name} M={found[0]} N={found[1]} K={found[2]}"] += 1
    time_key = "self_device_time_total" if cuda else "self_cpu_time_total"
    averages = sorted(
        (a for a in prof.key_averages(group_by_input_shape=True) if a.key.startswith("aten::")),
        key=lambda a: getattr(a, time_key, 0.0),
        reverse=True,
    )
    summary: dict[str, Any] = {
        "aten_calls": len(events),
        "calls_by_op": dict(Counter(e.name for e in events).most_common(top)),
        "allocated_bytes": sum(max(0, getattr(e, mem, 0)) for e in events),
        "long_reductions": dict(long),
        "top_ops": [
            {
                "op": a.key,
                "shapes": str(a.input_shapes),
                "calls": a.count,
                f"{time_key}_us": round(float(getattr(a, time_key, 0.0)), 1),
            }
            for a in averages[:top]
        ],
    }
    if cuda:
        try:
            summary |= _kernels(prof, top)
        except Exception as error:  # profiler API drift (untested on CPU) loses only this
            summary["kernels_error"] = repr(error)
    return summary


def _kernels(prof: Any, top: int) -> dict[str, Any]:
    """CUDA kernel launches: how many, their total time and the heaviest by name."""
    kernels: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            entry = kernels[e.name[:160]]
            entry[0] += 1
            entry[1] += float(e.device_time_total)
    ranked = sorted(kernels.items(), key=lambda kv: kv[1][1], reverse=True)
    return {
        "kernels": int(sum(c for c, _ in kernels.values())),
        "kernel_time_us": round(sum(t for _, t in kernels.values()), 1),
        "top_kernels": [
            {"kernel": k, "calls": int(c), "time_us": round(t, 1)} for k, (c, t) in ranked[:top]
        ],
    }


def profile_variants(
    steps: dict[str, Callable[[], None]],
    heads: Callable[[str], Callable[[], None] | None],
    *,
    device: torch.device,
    out_dir: Path,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Profile one call of each step and each head-only pass; write the summary as it grows.

    Args:
        steps: A training step per variant.
        heads: Makes a variant's head-only pass (its heads' own forward + backward on
            precomputed features; ``None`` for a variant without a head), made when its turn
            comes so that one set of features is held at a time.
        device: Where they run (CUDA adds kernel activity).
        out_dir: Folder for ``heads-profile-<device>.json`` (``{"variants": {name: {"step":
            summary, "head_only": summary}}, ...extra}``, rewritten after every variant, so
            that a time-out keeps what was done) and one table per variant and part.
        extra: Settings recorded in the JSON (input shape, dtype, ...).

    Returns:
        The JSON file's path.
    """
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    out_dir.mkdir(parents=True, exist_ok=True)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    path = out_dir / f"heads-profile-{device.type}.json"
    result: dict[str, Any] = {
        **(extra or {}),
        "device": str(device),
        "torch": torch.__version__,
        "long_reduction_rule": {"min_k": LONG_K, "max_output": SMALL_OUTPUT},
        "variants": {},
    }
    for name, step in steps.items():
        entry = result["variants"][name] = {}
        for part in ("step", "head_only"):
            fn = step if part == "step" else heads(name)
            if fn is None:
                continue
            fn()  # warm-up outside the profile
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            with profile(activities=activities, record_shapes=True, profile_memory=True) as prof:
                fn()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
            entry[part] = summarise(prof, device)
            table = prof.key_averages(group_by_input_shape=True).table(sort_by=sort, row_limit=30)
            safe = name.replace("/", "-")
            (out_dir / f"heads-profile-{device.type}-{safe}-{part}.txt").write_text(table + "\n")
        step_s = entry["step"]
        print(
            f"profile {name:>24}: {step_s['aten_calls']} aten calls, "
            f"{step_s['allocated_bytes'] / 2**20:.0f} MiB allocated, "
            f"{sum(step_s['long_reductions'].values())} long reductions"
            + (f", {step_s['kernels']} kernels" if "kernels" in step_s else "")
        )
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        os.replace(tmp, path)
    return path
