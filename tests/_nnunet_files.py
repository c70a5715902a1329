"""nnU-Net's files written for tests: a ``dataset.json`` and a plans file beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_dataset_json(folder: Path, labels: dict[str, int], *, num_training: int) -> Path:
    """``folder/dataset.json`` for one CT channel, as nnU-Net's raw datasets carry it."""
    folder.mkdir(parents=True, exist_ok=True)
    dataset = {"channel_names": {"0": "CT"}, "labels": labels, "numTraining": num_training,
               "file_ending": ".nii.gz"}  # fmt: skip
    (folder / "dataset.json").write_text(json.dumps(dataset))
    return folder / "dataset.json"


def write_plans_folder(
    folder: Path, plans: dict[str, Any], labels: dict[str, int], *, num_training: int
) -> Path:
    """``folder/nnUNetPlans.json`` with the ``dataset.json`` nnU-Net keeps next to it."""
    write_dataset_json(folder, labels, num_training=num_training)
    (folder / "nnUNetPlans.json").write_text(json.dumps(plans, indent=1))
    return folder / "nnUNetPlans.json"
