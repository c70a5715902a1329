"""nnU-Net's files written for tests: a ``dataset.json`` and a plans file beside it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: A 3-stage ``PlainConvUNet`` (4, 8, 16 channels, anisotropic first stage) in plans format.
TINY_PLAIN_ARCH: dict[str, Any] = {
    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "arch_kwargs": {
        "n_stages": 3, "features_per_stage": [4, 8, 16],
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]],
        "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
        "n_conv_per_stage": [1, 1, 1], "n_conv_per_stage_decoder": [1, 1], "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None,
        "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    },
    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
}  # fmt: skip


def write_dataset_json(
    folder: Path,
    labels: dict[str, int],
    *,
    num_training: int,
    channel_names: Sequence[str] = ("CT",),
    **entries: Any,
) -> Path:
    """``folder/dataset.json`` as nnU-Net's raw datasets carry it (one CT channel by default).

    ``entries`` are further top-level keys, e.g. ``dataset`` (explicit file lists).
    """
    folder.mkdir(parents=True, exist_ok=True)
    channels = {str(i): name for i, name in enumerate(channel_names)}
    dataset = {"channel_names": channels, "labels": labels, "numTraining": num_training,
               "file_ending": ".nii.gz", **entries}  # fmt: skip
    (folder / "dataset.json").write_text(json.dumps(dataset))
    return folder / "dataset.json"


def write_plans_folder(
    folder: Path, plans: dict[str, Any], labels: dict[str, int], *, num_training: int
) -> Path:
    """``folder/nnUNetPlans.json`` with the ``dataset.json`` nnU-Net keeps next to it."""
    write_dataset_json(folder, labels, num_training=num_training)
    (folder / "nnUNetPlans.json").write_text(json.dumps(plans, indent=1))
    return folder / "nnUNetPlans.json"
