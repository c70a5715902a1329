"""A hand-written nnU-Net plans file and the phantoms it was written for (``--plans`` tests)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from _nnunet_files import TINY_PLAIN_ARCH, write_plans_folder

__all__ = ["ARCH", "LABELS", "PHANTOMS", "PLANS", "TINY", "changed", "write_plans"]

LABELS = {"background": 0, "pancreas": 1, "lesion": 2}
# Phantoms of 20 x 16 x 12 voxels of 1.2 x 1.0 x 2.0 mm: (D, H, W) = (12, 16, 20) at (2, 1, 1.2).
PHANTOMS = {"n_train": 4, "n_validation": 0, "n_test": 2, "shape": (20, 16, 12),
            "spacing": (1.2, 1.0, 2.0), "class_counts": (1, 1, 1), "seed": 5}  # fmt: skip
ARCH = TINY_PLAIN_ARCH
_RESAMPLING = {"order": 3, "order_z": 0, "force_separate_z": None}
# nnU-Net's plans format (nnunetv2 2.8.1's ExperimentPlanner), written by hand for this geometry.
PLANS: dict[str, Any] = {
    "dataset_name": "Dataset998_Tiny", "plans_name": "nnUNetPlans",
    "original_median_spacing_after_transp": [2.0, 1.0, 1.2],
    "original_median_shape_after_transp": [12, 16, 20],
    "image_reader_writer": "SimpleITKIO",
    "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
    "configurations": {
        "3d_fullres": {
            "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2, "patch_size": [8, 16, 16],
            "median_image_size_in_voxels": [12.0, 16.0, 20.0], "spacing": [2.0, 1.0, 1.2],
            "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {"is_seg": False, **_RESAMPLING},
            "resampling_fn_seg_kwargs": {"is_seg": True, **_RESAMPLING, "order": 1},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {"is_seg": False, **_RESAMPLING, "order": 1},
            "architecture": ARCH, "batch_dice": False,
        },
    },
    "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
    "foreground_intensity_properties_per_channel": {
        "0": {"max": 170.0, "mean": 95.0, "median": 105.0, "min": -190.0,
              "percentile_00_5": -140.0, "percentile_99_5": 160.0, "std": 45.0},
    },
}  # fmt: skip
TINY = ["--epochs", "1", "--iters-per-epoch", "1", "--device", "cpu", "--workers", "1",
        "--intensity-samples", "1000", "--val-every", "0", "--no-progress"]  # fmt: skip


def write_plans(folder: Path, plans: dict | None = None, labels: dict | None = None) -> Path:
    """``folder/nnUNetPlans.json`` (default :data:`PLANS`) with its ``dataset.json``."""
    return write_plans_folder(folder, plans or PLANS, labels or LABELS, num_training=4)


def changed(**changes: Any) -> dict:
    """:data:`PLANS` with these entries of ``3d_fullres`` changed."""
    plans = copy.deepcopy(PLANS)
    plans["configurations"]["3d_fullres"].update(changes)
    return plans
