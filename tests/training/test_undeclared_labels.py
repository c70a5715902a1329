"""A dataset that declares no labels trains on the values in its masks, with neutral names."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from multitask_unet.checkpoints import load_checkpoint
from multitask_unet.data.io import read_mask, write_image
from multitask_unet.data.phantoms import write_phantom_dataset
from multitask_unet.data.planning.fingerprint import DatasetFingerprint
from multitask_unet.data.readers import read_dataset
from multitask_unet.data.validation import validate_dataset
from multitask_unet.training import DataConfig
from multitask_unet.training.distributed import DistInfo
from multitask_unet.training.pipeline import train

from ._helpers import PHANTOMS, config, prepare, trainer


def _undeclared(root: Path) -> Path:
    write_phantom_dataset(root, **PHANTOMS)
    (root / "dataset.json").unlink()
    return root


def test_training_names_the_labels_found_and_samples_the_rarest(tmp_path: Path) -> None:
    data = _undeclared(tmp_path / "data")
    run = tmp_path / "run"
    train(data, run, config(epochs=1, lesion_probability=0.5), workers=1, verbose=False,
          intensity_samples=10**4)  # fmt: skip
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt.label_names == {"background": 0, "label1": 1, "label2": 2}
    assert ckpt.class_names == ("subtype0", "subtype1", "subtype2")  # the study's folders
    assert ckpt.training["config"]["data"]["lesion_label"] is None  # as configured
    prepared = prepare(tmp_path / "declared", tmp_path / "cache")
    loader = trainer(prepared, tmp_path / "run2", config())._loader_config(
        DistInfo(0, 1, 0, torch.device("cpu"))
    )
    assert loader.lesion_label == 2  # the lesion: the fewest voxels


def test_validation_accepts_any_value_when_none_are_declared(tmp_path: Path) -> None:
    data = _undeclared(tmp_path / "data")
    index = read_dataset(data)
    mask_path = index.split("train").records[0].mask
    mask = read_mask(mask_path)
    write_image(mask_path, np.where(mask.array == 2, 3, mask.array).astype(np.uint8), mask.affine)
    assert validate_dataset(index).ok  # any value, numbered without gaps (0..3)
    (data / "dataset.json").write_text('{"labels": {"background": 0, "a": 1, "b": 2}}')
    report = validate_dataset(read_dataset(data))
    assert [i.message for i in report.errors] == [
        "mask values [3] are not declared labels [0, 1, 2]"
    ]


def test_the_rarest_foreground_label_is_the_default_lesion_label() -> None:
    def rarest(counts: dict[str, int]) -> int | None:
        fingerprint = SimpleNamespace(label_voxel_counts=counts)  # all the property reads
        return DatasetFingerprint.rarest_foreground_label.fget(fingerprint)

    assert rarest({"0": 1000, "1": 300, "2": 20, "3": 90}) == 2
    assert rarest({"0": 1000, "1": 5, "4": 5}) == 4  # ties: the larger value
    assert rarest({"0": 1000}) is None
    assert DataConfig().with_lesion_label(3).lesion_label == 3
    assert DataConfig(lesion_label=1).with_lesion_label(3).lesion_label == 1
    assert DataConfig().with_lesion_label(None).lesion_label is None
