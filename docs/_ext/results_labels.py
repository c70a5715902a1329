"""Readable names for the keys, files and machines of benchmark result files.

Result files keep short machine-friendly keys (``median_s``, ``n``, ``peak_memory_mib``); the
pages show them through :data:`LABELS`, and any key it does not know through
:func:`readable` (underscores to spaces, a unit from the suffix). A file's section is titled by
the benchmark it holds (:func:`file_title`), not by its path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "LABELS",
    "MACHINE_KEYS",
    "TITLES",
    "date_of",
    "environment",
    "file_title",
    "label",
    "machine_line",
    "readable",
    "variant_label",
]

#: Keys with a name of their own; everything else goes through :func:`readable`.
LABELS: dict[str, str] = {
    "median_s": "median time (s)",
    "min_s": "fastest (s)",
    "mean_s": "mean time (s)",
    "n": "repeats",
    "times_s": "times (s)",
    "median_seconds": "median time (s)",
    "head_only_seconds": "head alone (s)",
    "steps_per_s": "steps per second",
    "samples_per_s": "samples per second",
    "iterations_per_s": "iterations per second",
    "patches_per_s": "patches per second",
    "ours_it_per_s": "ours, iterations per second",
    "nnunet_it_per_s": "nnU-Net, iterations per second",
    "peak_memory_mib": "peak memory (MiB)",
    "peak_mem_mib": "peak memory (MiB)",
    "peak_memory_allocated_gib": "peak memory allocated (GiB)",
    "peak_memory_reserved_gib": "peak memory reserved (GiB)",
    "saved_activations_mib": "tensors saved for backward (MiB)",
    "time_ratio": "time, ours / reference",
    "memory_ratio": "peak memory, ours / reference",
    "saved_activations_ratio": "tensors saved for backward, ours / reference",
    "speedup_vs_nnunet": "speed-up vs nnU-Net (×)",
    "ratio_to_nnunet": "time, ours / nnU-Net",
    "ratio_vs_nnunet": "throughput, ours / nnU-Net",
    "median_ratio_ours_to_nnunet": "median time, ours / nnU-Net",
    "median_ratio_sklearn_to_ours": "median time, scikit-learn / ours",
    "dice_vs_nnunet": "Dice vs nnU-Net",
    "dice_vs_fp32_sums": "Dice vs float32 sums",
    "dice_vs_nnunet_fp32_sums": "Dice vs nnU-Net with float32 sums",
    "max_abs_logit_diff_vs_fp32_sums": "largest logit difference vs float32 sums",
    "nnunet_verify_dataset_integrity_s": "nnU-Net verify_dataset_integrity (s)",
    "fp32": "float32",
    "bf16": "bfloat16 autocast",
    "max_abs_logit_diff": "largest logit difference",
    "window_batch_size": "windows per batch",
    "autocast_dtype": "autocast dtype",
    "network_calls_nnunet": "network calls (nnU-Net)",
    "repeats_interleaved": "interleaved repeats",
    "by_batch": "by batch size",
    "arch": "architecture",
    "patch": "patch size",
    "dna": "dynamic-network-architectures",
    "nnunet": "nnU-Net",
    "nnunet_eager": "nnU-Net, eager",
    "ours": "ours",
    "ours_queue": "ours on TorchIO's Queue",
    "ours_numpy": "ours (NumPy)",
    "sklearn": "scikit-learn",
    "seg_only": "segmentation only",
    "single_process_cpu": "single process",
    "cpu_threads": "CPU threads",
    "cpu_count": "CPUs",
    "device_name": "device",
    "load_average_1min": "load average, 1 min",
    "load_average_1_5_15": "load average, 1 / 5 / 15 min",
}

#: Unit suffixes of keys, longest first: ``train_s`` reads "train (s)".
_UNITS = (
    ("_per_s", " per second"),
    ("_seconds", " (s)"),
    ("_gib", " (GiB)"),
    ("_mib", " (MiB)"),
    ("_mb", " (MB)"),
    ("_gb", " (GB)"),
    ("_ms", " (ms)"),
    ("_s", " (s)"),
)


def readable(key: str) -> str:
    """A key as words: the unit suffix spelled out, then underscores to spaces.

    >>> readable("train_s"), readable("peak_rss_gib"), readable("samples_per_s")
    ('train (s)', 'peak rss (GiB)', 'samples per second')
    """
    for suffix, unit in _UNITS:
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)].replace("_", " ") + unit
    return key.replace("_", " ")


def label(key: Any) -> str:
    """The name a page shows for ``key``: :data:`LABELS`, else :func:`readable`."""
    key = str(key)
    return LABELS.get(key, readable(key))


#: Parts of variant names (``ours_amp_bf16_compile``), read from the left, longest first.
_VARIANT_WORDS = (
    ("reduce_overhead", "compiled with CUDA graphs"),
    ("compile_unfused", "compiled, default optimiser kernels"),
    ("compile", "compiled"),
    ("amp_bf16", "bf16 autocast"),
    ("channels_last", "channels-last"),
    ("fp32", "float32"),
    ("bf16", "bf16 autocast"),
    ("device", "augmentation on the device"),
)


def variant_label(name: str) -> str:
    """A measured variant in words.

    >>> variant_label("ours_amp_bf16_reduce_overhead")
    'bf16 autocast, compiled with CUDA graphs'
    """
    rest, words = name.removeprefix("ours").strip("_"), []
    while rest:
        for part, text in _VARIANT_WORDS:
            if rest == part or rest.startswith(part + "_"):
                words.append(text)
                rest = rest[len(part) :].lstrip("_")
                break
        else:
            token, _, rest = rest.partition("_")
            words.append(token)
    return ", ".join(words) or "ours"


#: Result-file name prefixes and the benchmark they hold, matched longest first.
TITLES: dict[str, str] = {
    "network": "Network forward + backward",
    "train_step": "Training step",
    "train_loop": "Training loop",
    "heads": "Classification heads' cost",
    "bench_data": "Training input pipeline",
    "predict": "Sliding-window prediction",
    "validate": "Dataset validation",
    "classification_metrics": "Classification metrics",
    "pancreas-study-train": "Study training speed",
    "study_train": "Study training speed",
    "suite": "Suite headlines",
    "demo": "Demo on phantoms",
    "cpu_bf16": "bfloat16 on the CPU",
    "pancreas-cpu-budget": "Pancreas on a time budget",
    "pancreas-cpu-crossval": "Pancreas cross-validation",
}


def file_title(path: Path) -> str:
    """A section title for a result file: the benchmark, then what its name adds.

    >>> file_title(Path("train_step-cuda-h100-2026-11-27.json"))
    'Training step (cuda, h100, 2026-11-27)'
    """
    stem = path.stem
    prefix = max((p for p in TITLES if stem.startswith(p)), key=len, default=None)
    if prefix is None:
        return readable(stem.replace("-", " ")).capitalize()
    rest = stem[len(prefix) :].strip("-_")
    parts = [p.strip("_").replace("_", " ") for p in re.findall(r"\d{4}-\d\d-\d\d|[^-]+", rest)]
    parts = [p for p in parts if p]
    return f"{TITLES[prefix]} ({', '.join(parts)})" if parts else TITLES[prefix]


#: Software whose version a file records, with the name a reader knows it by.
SOFTWARE = (
    ("torch", "torch"),
    ("python", "Python"),
    ("multitask_unet", "multitask_unet"),
    ("nnunetv2", "nnunetv2"),
    ("dynamic_network_architectures", "dynamic-network-architectures"),
    ("torchio", "TorchIO"),
)
#: Keys that describe the machine, wherever they appear: top level, ``environment`` or
#: ``machine``.
MACHINE_KEYS = (
    "device",
    "device_name",
    "gpu_name",
    "cpu_model",
    "gpu",
    "processor",
    "cpu_count",
    "cpus",
    "cpu_threads",
    "threads",
    "torch_threads",
    "dtype",
    "date",
    *(key for key, _ in SOFTWARE),
)


def environment(data: Mapping[str, Any]) -> dict[str, Any]:
    """What a result file says about its machine, merged from wherever it says it."""
    env: dict[str, Any] = {}
    for section in ("machine", "environment"):
        value = data.get(section)
        if isinstance(value, Mapping):
            env.update(value)
    env.update({k: v for k, v in data.items() if k in MACHINE_KEYS})
    return env


def date_of(env: Mapping[str, Any]) -> str:
    """The day a file was measured (``YYYY-MM-DD``), or ``unknown`` when it is not recorded."""
    date = env.get("date")
    return str(date)[:10] if date else "unknown"


def machine_line(env: Mapping[str, Any]) -> str:
    """One sentence on the machine and the software: "NVIDIA H200 (cuda), 16 CPU threads, ..."."""
    keys = ("device_name", "gpu_name", "cpu_model", "gpu", "processor")
    name = next((env[k] for k in keys if env.get(k)), None)
    device = env.get("device")
    parts = [f"{name} ({device})" if name and device else str(name or device or "")]
    for key, unit in (
        ("cpu_count", "CPUs"),
        ("cpus", "CPUs"),
        ("cpu_threads", "CPU threads"),
        ("threads", "threads"),
        ("torch_threads", "torch threads"),
    ):
        if env.get(key) is not None:
            parts.append(f"{env[key]} {unit.removesuffix('s') if env[key] == 1 else unit}")
    if env.get("dtype"):
        parts.append(f"dtype {env['dtype']}")
    parts.append(f"date {date_of(env)}")
    software = [f"{name} {env[key]}" for key, name in SOFTWARE if env.get(key)]
    line = ", ".join(p for p in parts if p)
    return f"{line}; {', '.join(software)}" if software else line
