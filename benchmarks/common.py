"""Shared helpers: environment description, interleaved timing, result files."""

from __future__ import annotations

import copy
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from multitask_unet import provenance

if TYPE_CHECKING:
    from multitask_unet.data.planning.plan import ChannelNormalization

RESULTS = Path(__file__).resolve().parent / "results"


def environment(device: str, dtype: str = "float32") -> dict[str, Any]:
    """Device, dtype and versions, recorded with every result."""
    return provenance.environment(device, dtype=dtype)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved_times(
    fns: dict[str, Callable[[], Any]],
    *,
    device: str,
    repeats: int,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Run each function ``repeats`` times, interleaved in a rotating order, so drift and
    order effects hit all alike.

    ``clock=time.process_time`` counts this process's CPU seconds (all threads), which other
    jobs on a shared CPU machine disturb far less than wall time; use wall time on a GPU.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
            sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        # Rotate the order every round so no variant always runs first (or after another).
        for name in names[r % len(names) :] + names[: r % len(names)]:
            fn = fns[name]
            sync(device)
            start = clock()
            fn()
            sync(device)
            times[name].append(clock() - start)
    return times


def summary(times: list[float]) -> dict[str, float]:
    return {"median_s": statistics.median(times), "min_s": min(times), "n": len(times)}


def save(name: str, result: dict[str, Any], out_dir: Path | None = None) -> Path:
    """Write ``results/<name>-<device>.json`` atomically and return its path."""
    out_dir = out_dir or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    device = str(result.get("environment", {}).get("device", "cpu")).split(":")[0]
    path = out_dir / f"{name}-{device}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def machine(device: str) -> dict[str, Any]:
    """The CPU's model and core count, and the GPU's name (None on a CPU run)."""
    cuda = device.startswith("cuda") and torch.cuda.is_available()
    return {
        "cpu_model": provenance.cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu_name": torch.cuda.get_device_name(torch.device(device)) if cuda else None,
    }


def nnunet_architecture(network_class: str, **arch_kwargs: Any) -> dict[str, Any]:
    """The ``architecture`` block of an nnU-Net plans configuration for a 3-D U-Net.

    Args:
        network_class: A dynamic-network-architectures U-Net, ``"PlainConvUNet"`` or
            ``"ResidualEncoderUNet"``.
        **arch_kwargs: Its ``arch_kwargs``: ``features_per_stage``, ``kernel_sizes``,
            ``strides`` and ``n_conv_per_stage`` (plain) or ``n_blocks_per_stage`` (residual),
            and any of the defaults to replace: biased ``Conv3d``, affine ``InstanceNorm3d``
            (eps 1e-5), no dropout, in-place ``LeakyReLU``, one decoder convolution per stage;
            ``n_stages`` is the length of ``features_per_stage``.
    """
    n = len(arch_kwargs["features_per_stage"])
    defaults = {
        "n_stages": n,
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
        "n_conv_per_stage_decoder": [1] * (n - 1),
    }
    return {
        "network_class_name": f"dynamic_network_architectures.architectures.unet.{network_class}",
        "arch_kwargs": copy.deepcopy({**defaults, **arch_kwargs}),
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }


def write_nnunet_dataset(
    cache: Path,
    base: Path,
    *,
    architecture: dict[str, Any],
    patch: tuple[int, int, int],
    batch: int,
    name: str = "Dataset901_Benchmark",
) -> Path:
    """A preprocessed nnU-Net 2.8 dataset that its ``nnUNetTrainer`` trains on, from our cache.

    Writes ``base/name/``: the cached cases in nnU-Net's format
    (:func:`benchmarks.bench_data.write_nnunet_folder`, chunked for ``patch``) under
    ``nnUNetPlans_3d_fullres/``, a ``nnUNetPlans.json`` whose ``3d_fullres`` configuration has
    ``architecture``, ``patch`` and ``batch`` (and the cache plan's spacing and CT statistics),
    ``dataset.json``, ``dataset_fingerprint.json`` and ``splits_final.json`` (fold 0 trains on
    every case). Point ``nnUNet_preprocessed`` at ``base``; returns ``base/name``.
    """
    from benchmarks.bench_data import write_nnunet_folder
    from multitask_unet.data.preprocessing.cache import load_cached_plan
    from multitask_unet.data.readers import generic_label_names

    plan = load_cached_plan(cache)
    folder = base / name
    ids = write_nnunet_folder(cache, folder / "nnUNetPlans_3d_fullres", patch)
    if not ids:
        raise FileNotFoundError(f"no case with a segmentation in {cache}; preprocess one first")
    plans = nnunet_ct_plans(
        name,
        architecture=architecture,
        patch=patch,
        batch=batch,
        spacing=plan.target_spacing,
        median_shape=plan.median_shape,
        norm=plan.preprocessing.normalization[0],
    )
    dataset = {"labels": generic_label_names(plan.preprocessing.labels), "channel_names": {"0": "CT"}, "numTraining": len(ids),
               "file_ending": ".nii.gz"}  # fmt: skip
    files = {
        "nnUNetPlans.json": plans,
        "dataset.json": dataset,
        "dataset_fingerprint.json": {"note": "written by benchmarks.common.write_nnunet_dataset"},
        "splits_final.json": [{"train": ids, "val": ids[:2]}],
    }
    for file, content in files.items():
        (folder / file).write_text(json.dumps(content, indent=2) + "\n")
    return folder


def nnunet_ct_plans(
    name: str,
    *,
    architecture: dict[str, Any],
    patch: Sequence[int],
    batch: int,
    spacing: Sequence[float],
    median_shape: Sequence[int],
    norm: ChannelNormalization,
) -> dict[str, Any]:
    """nnU-Net 2.x plans (``nnUNetPlans``) with one ``3d_fullres`` configuration for one CT channel.

    The configuration has nnU-Net's defaults: ``CTNormalization`` with ``norm``'s foreground
    statistics, no mask for the normalisation, ``resample_data_or_seg_to_shape`` (order 3 for
    data, 1 for segmentations and probabilities, no separate z), and no transposition; the
    dataset's median spacing and shape are ``spacing`` and ``median_shape``.
    """
    stats = {"mean": norm.mean, "std": norm.std, "percentile_00_5": norm.lower,
             "percentile_99_5": norm.upper}  # fmt: skip
    resample = {"order_z": 0, "force_separate_z": None}
    configuration = {
        "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor",
        "batch_size": batch, "patch_size": list(patch),
        "median_image_size_in_voxels": [int(s) for s in median_shape],
        "spacing": list(spacing), "normalization_schemes": ["CTNormalization"],
        "use_mask_for_norm": [False], "batch_dice": False,
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, **resample},
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, **resample},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, **resample},
        "architecture": architecture,
    }  # fmt: skip
    return {
        "dataset_name": name, "plans_name": "nnUNetPlans", "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "original_median_spacing_after_transp": list(spacing),
        "original_median_shape_after_transp": [int(s) for s in median_shape],
        "configurations": {"3d_fullres": configuration}, "label_manager": "LabelManager",
        "experiment_planner_used": "ExperimentPlanner",
        "foreground_intensity_properties_per_channel": {"0": stats},
    }  # fmt: skip
